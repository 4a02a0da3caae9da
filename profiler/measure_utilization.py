"""SM, L2 and DRAM utilisation per (model, batch), from Nsight Compute (GPU only, optional).

GPUlet's interference features. ``ncu`` replays each kernel of one forward (in a child
process, :mod:`strait_sim.profiler.ncu_target`) and reports, per kernel, its duration and
the throughput of the SMs, the L2 and DRAM as a percentage of peak; the row for a
(model, batch) is the duration-weighted mean over its kernels. Skipped, with a note, where
``ncu`` is not on PATH or the backend is not CUDA. NOT RUN in the development session (no
GPU); ncu may need permission to read GPU performance counters (see docs/profiling.md).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys

from strait_sim.profiler.measure_common import MeasureContext

METRICS = {
    "duration": "gpu__time_duration.sum",
    "sm_pct": "sm__throughput.avg.pct_of_peak_sustained_elapsed",
    "l2_pct": "lts__t_sectors.avg.pct_of_peak_sustained_elapsed",
    "dram_pct": "dram__throughput.avg.pct_of_peak_sustained_elapsed",
}
NCU_TIMEOUT_S = 900


def ncu_available() -> str | None:
    return shutil.which("ncu")


def parse_ncu_csv(text: str) -> dict[str, float]:
    """Duration-weighted means of the utilisation metrics from ``ncu --csv --page raw``."""
    lines = [ln for ln in text.splitlines() if ln.startswith('"')]
    if not lines:
        raise ValueError("ncu printed no CSV rows")
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    total, acc = 0.0, {"sm_pct": 0.0, "l2_pct": 0.0, "dram_pct": 0.0}
    kernels = 0
    for row in rows:
        try:
            dur = float(str(row[METRICS["duration"]]).replace(",", ""))
            vals = {k: float(str(row[METRICS[k]]).replace(",", "")) for k in acc}
        except (KeyError, ValueError):
            continue  # the units row, or a kernel ncu could not measure
        total += dur
        kernels += 1
        for k, v in vals.items():
            acc[k] += v * dur
    if total <= 0:
        raise ValueError("ncu reported no kernel durations")
    out = {k: v / total for k, v in acc.items()}
    out["kernels"] = kernels
    return out


def run(ctx: MeasureContext, model_files: tuple[str, ...] = ()) -> dict:
    if ctx.backend.kind != "cuda":
        return {"skipped": "utilization needs a CUDA backend"}
    ncu = ncu_available()
    if ncu is None:
        ctx.note("utilization skipped: Nsight Compute (ncu) is not on PATH")
        return {"skipped": "ncu not found on PATH"}
    s = ctx.settings
    units = [(m, b) for m in s.models for b in s.batches]
    have = ctx.key_counts("utilization.csv", ("model", "batch"))
    solo_have = ctx.key_counts("solo.csv", ("model", "batch"))
    ctx.progress.start("utilization", len(units), sum(1 for u in units if have[u]))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(getattr(ctx.backend, "index", 0)))
    for model, batch in units:
        if have[(model, batch)] or not solo_have[(model, batch)]:
            continue
        cmd = [ncu, "--csv", "--page", "raw", "--profile-from-start", "off",
               "--metrics", ",".join(METRICS.values()), sys.executable, "-m",
               "strait_sim.profiler.ncu_target", model, str(batch),
               ctx.backend.precision, *model_files]  # type: ignore[attr-defined]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=NCU_TIMEOUT_S, check=False)
        try:
            if proc.returncode != 0:
                raise ValueError(f"exit {proc.returncode}: "
                                 f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
            vals = parse_ncu_csv(proc.stdout)
        except ValueError as exc:
            ctx.note(f"utilization {model} batch {batch}: ncu failed ({exc})")
            ctx.unit_done("utilization")
            continue
        ctx.store.append("utilization.csv", [{"model": model, "batch": batch, **vals}])
        ctx.unit_done("utilization")
    return {"tool": "ncu", "metrics": METRICS}
