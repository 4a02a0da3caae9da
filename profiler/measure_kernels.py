"""Kernel timelines: one solo forward per (model, batch) traced with torch.profiler.

On CUDA the rows are the device kernels of one eager forward (the timed runs use CUDA
graphs; tracing the eager forward names every kernel reliably). On the CPU they are the
top-level ATen operators of one forward, run with the same thread count as a stream.

Rows are capped at ``kernel_rows`` per (model, batch) to keep bundles small: when a
forward has more, the longest ones are kept; ``seq`` is always the operator's position
in the full timeline, so gaps show where rows were dropped. The number of kernels before
the cap and the share of time the kept rows cover go to profile.json (``parts.kernels``).
"""

from __future__ import annotations

import os

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from strait_sim.profiler.measure_common import MeasureContext

# Kineto prints "USDT: profiler_start/stop" lines to stderr on every trace, which would
# scroll the progress bar away; level 6 silences them (unless the user set a level).
os.environ.setdefault("KINETO_LOG_LEVEL", "6")
PROFILER_SELF = ("ProfilerStep", "[memory]", "Activity Buffer Request")


def trace_forward(backend: object, model: str, batch: int) -> list[tuple[str, float, float]]:
    """(name, start_us, duration_us) of one forward, in start order."""
    spec = backend.spec(model)  # type: ignore[attr-defined]
    module = backend.module(model)  # type: ignore[attr-defined]
    precision = backend.precision  # type: ignore[attr-defined]
    x = spec.make_input(batch, precision, torch.Generator().manual_seed(0))
    on_gpu = getattr(backend, "kind", "cpu") == "cuda"
    if on_gpu:
        x = x.to(backend.device)  # type: ignore[attr-defined]
        activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    else:
        activities = [ProfilerActivity.CPU]
        torch.set_num_threads(getattr(backend, "threads_per_stream", torch.get_num_threads()))
    with torch.inference_mode():
        module(x)  # one warm call outside the trace
        if on_gpu:
            torch.cuda.synchronize(backend.device)  # type: ignore[attr-defined]
        with profile(activities=activities) as prof:
            module(x)
            if on_gpu:
                torch.cuda.synchronize(backend.device)  # type: ignore[attr-defined]
    events = []
    for e in prof.events():
        if any(e.name.startswith(p) for p in PROFILER_SELF):
            continue
        if on_gpu:
            keep = e.device_type == DeviceType.CUDA
        else:
            keep = e.device_type == DeviceType.CPU and e.cpu_parent is None \
                and e.name.startswith("aten::")
        if keep:
            events.append((e.name, float(e.time_range.start), float(e.time_range.elapsed_us())))
    events.sort(key=lambda ev: ev[1])
    return events


def run(ctx: MeasureContext) -> dict:
    s = ctx.settings
    units = [(m, b) for m in s.models for b in s.batches]
    have = ctx.key_counts("kernels.csv", ("model", "batch"))
    solo_have = ctx.key_counts("solo.csv", ("model", "batch"))
    ctx.progress.start("kernels", len(units), sum(1 for u in units if have[u]))
    summary = dict(ctx.store.meta.get("parts", {}).get("kernels", {}).get("per_unit", {}))
    for model, batch in units:
        if have[(model, batch)] or not solo_have[(model, batch)]:
            continue
        ctx.backend.synchronize()
        events = trace_forward(ctx.backend, model, batch)
        if not events:
            ctx.note(f"kernels {model} batch {batch}: the trace held no kernels")
            ctx.unit_done("kernels")
            continue
        t0 = events[0][1]
        rows = [{"model": model, "batch": batch, "seq": i, "name": name,
                 "start_us": start - t0, "duration_us": dur}
                for i, (name, start, dur) in enumerate(events)]
        total = sum(r["duration_us"] for r in rows)
        if len(rows) > s.kernel_rows:
            rows = sorted(sorted(rows, key=lambda r: -r["duration_us"])[:s.kernel_rows],
                          key=lambda r: r["seq"])
        kept = sum(r["duration_us"] for r in rows)
        summary[f"{model}@{batch}"] = {"kernels": len(events), "rows_kept": len(rows),
                                       "time_share_kept": round(kept / total, 4) if total else 1}
        ctx.store.append("kernels.csv", rows)
        ctx.unit_done("kernels")
    return {"per_unit": summary, "max_rows": s.kernel_rows,
            "source": "cuda kernels of one eager forward" if ctx.backend.kind == "cuda"
            else "top-level aten operators of one forward (CPU)"}
