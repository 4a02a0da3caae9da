"""``run_live``: one live run from its parts to a :class:`RunResult`, like ``run_simulation``.

Steps: check the device is idle (:mod:`strait_sim.live.busy_check`), build the profiler's
backend for the workload's models with one stream per slot (``make_backend``: torch-cuda on
``--gpu N``, torch-cpu on ``--cpu``), prepare every (model, batch size) the policy may form
(1..max_batch) before the clock starts, probe the device against its profile when asked
(``probe``: a few solo forwards per model on the run's own backend,
:func:`strait_sim.live.drift.probe_run_backend`; the record goes to the summary's
``drift``), run the driver over the wall clock
(:func:`~strait_sim.live.drive.drive_live`), and summarise with
the simulator's own summary code, so that live results load, print and compare exactly as
simulated ones. The summary says ``"mode": "live"`` and adds an ``executor`` block (the
executor's measured overheads, failures, interruption) and the device's description.

Backend settings follow the profile where it records them (precision, CUDA graphs, CPU
threads per stream), so that the live device runs as it ran when profiled.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from strait_sim.driver.config import SimConfig
from strait_sim.driver.driver import RunOutcome
from strait_sim.errors import UserError
from strait_sim.experiment import build_summary
from strait_sim.live.busy_check import check_device_idle
from strait_sim.live.drive import drive_live
from strait_sim.policies.base import Policy
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.profiler.backend import Backend, BackendError
from strait_sim.results import RunResult
from strait_sim.workloads.base import Workload


@dataclass
class LiveOptions:
    """How to run live. Exactly one of ``gpu`` or ``cpu`` unless ``backend`` is given."""

    gpu: int | None = None
    cpu: bool = False
    force: bool = False  # start even if the device is busy
    quiet: bool = False
    busy_threshold: float | None = None  # None: the kind's default (busy_check)
    backend: Backend | None = None  # prebuilt (tests, fault injection); not closed here
    precision: str | None = None  # default: the profile's, else the backend's default
    threads_per_stream: int | None = None  # torch-cpu; default: the profile's, else all
    warmup: int = 2
    drain_timeout_s: float = 30.0  # after Ctrl-C, wait this long for jobs in flight
    handle_sigint: bool = True
    probe: bool = False  # drift probe before the run (run --live does, unless --no-probe)


def _say(opts: LiveOptions, text: str) -> None:
    if not opts.quiet:
        print(f"live: {text}", file=sys.stderr, flush=True)


def _say_always(opts: LiveOptions, text: str) -> None:
    """Said even with ``quiet`` (the caller decides what is worth saying then)."""
    print(f"live: {text}", file=sys.stderr, flush=True)


def _backend_kind(opts: LiveOptions) -> str:
    if opts.backend is not None:
        return opts.backend.kind
    if (opts.gpu is None) == (not opts.cpu):
        raise UserError("a live run needs exactly one of --gpu N or --cpu")
    return "cpu" if opts.cpu else "cuda"


def _check_models(workload: Workload) -> None:
    from strait_sim.profiler.zoo import model_registry

    known = model_registry()
    for m in workload.models:
        if m not in known:
            raise UserError(f"model '{m}' is in the profile but not in the backend's model zoo, "
                            f"so it cannot run live; zoo models: {', '.join(sorted(known))}")


def _backend_options(bundle: ProfileBundle, kind: str, opts: LiveOptions) -> dict:
    meta_backend = bundle.meta.get("backend", {}) if hasattr(bundle.meta, "get") else {}
    meta_device = bundle.meta.get("device", {}) if hasattr(bundle.meta, "get") else {}
    precision = opts.precision or meta_backend.get("precision")
    valid = ("fp32", "bf16") if kind == "cpu" else ("fp16", "fp32", "bf16")
    out: dict = {"precision": precision if precision in valid else None,
                 "warmup": opts.warmup}
    if kind == "cpu":
        threads = (opts.threads_per_stream or meta_backend.get("threads_per_stream")
                   or meta_device.get("threads_per_stream"))
        if isinstance(threads, int) and threads > 0:
            out["threads_per_stream"] = threads
    elif isinstance(meta_backend.get("cuda_graphs"), bool):
        out["cuda_graphs"] = meta_backend["cuda_graphs"]
    return out


def build_backend(bundle: ProfileBundle, workload: Workload, config: SimConfig,
                  opts: LiveOptions) -> Backend:
    """The profiler's backend for this run: one stream per slot, the workload's models."""
    from strait_sim.profiler.backends import make_backend

    kind = _backend_kind(opts)
    _check_models(workload)
    options = _backend_options(bundle, kind, opts)
    precision = options.pop("precision")
    if kind == "cpu":
        return make_backend("torch-cpu", streams=config.slots, precision=precision,
                            models=list(workload.models), **options)
    return make_backend("torch-cuda", device=opts.gpu, streams=config.slots,
                        precision=precision, models=list(workload.models), **options)


def prepare_all(backend: Backend, models: tuple[str, ...], max_batch: int) -> float:
    """Load every (model, batch size) the policy may form, before the clock starts."""
    t0 = time.perf_counter()
    for m in models:
        for b in range(1, max_batch + 1):
            try:
                backend.prepare(m, b)
            except BackendError as exc:
                raise UserError(f"cannot prepare {m} at batch {b} on the live device ({exc}); "
                                f"try a smaller --max-batch") from None
    backend.synchronize()  # idle device; torch-cuda re-anchors its clock mapping here
    return time.perf_counter() - t0


def run_live(bundle: ProfileBundle, workload: Workload, policy: Policy, config: SimConfig,
             opts: LiveOptions | None = None) -> RunResult:
    """Run ``workload`` through ``policy`` on the real device; results as a simulated run."""
    opts = opts or LiveOptions()
    if config.gpus != 1:
        raise UserError(f"live mode drives one device: --gpus must be 1, got {config.gpus}")
    kind = _backend_kind(opts)
    if kind == "cuda" and opts.backend is None:
        from strait_sim.profiler.backends import check_gpu

        check_gpu(int(opts.gpu or 0))
    if bundle.device_kind not in (kind, "unknown"):
        _say(opts, f"warning: profile '{bundle.name}' describes a {bundle.device_kind} "
                   f"device but this run is on the {kind}")
    busy = check_device_idle(kind, opts.gpu, threshold=opts.busy_threshold, force=opts.force)
    if busy.get("busy_reasons"):
        _say(opts, f"warning: device busy ({'; '.join(busy['busy_reasons'])}), forced")
    backend = opts.backend if opts.backend is not None else build_backend(
        bundle, workload, config, opts)
    try:
        device = backend.device_info()
        _say(opts, f"{backend.name} on {device.get('name', '?')}, {config.slots} slot(s); "
                   f"preparing {len(workload.models)} model(s) x batch 1..{config.max_batch}")
        prepare_s = prepare_all(backend, tuple(workload.models), config.max_batch)
        drift = None
        if opts.probe:
            from strait_sim.live.drift import probe_run_backend

            drift = probe_run_backend(bundle, backend, list(workload.models),
                                      config.max_batch, say=lambda m: _say_always(opts, m),
                                      quiet=opts.quiet)
            backend.synchronize()  # idle again before the clock starts
        _say(opts, "running (Ctrl-C stops and keeps the results so far)")
        outcome = drive_live(bundle, workload, policy, config, backend,
                             drain_timeout_s=opts.drain_timeout_s,
                             handle_sigint=opts.handle_sigint)
    finally:
        if opts.backend is None:
            backend.close()
    live = outcome.extra
    if live["interrupted"]:
        _say(opts, f"interrupted: {live['unfinished']} unfinished request(s) marked failed")
    if live["failed_batches"]:
        _say(opts, f"{len(live['failed_batches'])} batch(es) failed on the device; their "
                   f"requests are marked failed")
    df = outcome.records.to_frame(outcome.models)
    summary = live_summary(df, outcome, bundle, workload, policy, config, backend, device,
                           busy, prepare_s)
    if drift is not None:
        summary["drift"] = drift
    return RunResult(df, summary, timeline=outcome.timeline)


def live_summary(df, outcome: RunOutcome, bundle: ProfileBundle, workload: Workload,
                 policy: Policy, config: SimConfig, backend: Backend, device: dict,
                 busy: dict, prepare_s: float) -> dict:
    """The simulator's summary of the live records, plus what only a live run has."""
    live = outcome.extra
    summary = build_summary(df, outcome, bundle, workload, policy, config, live["wall_s"])
    summary["mode"] = "live"
    summary["engine"]["requests_per_wall_s"] = None  # wall time is the run itself
    summary["device"] = device
    summary["executor"] = {
        "backend": backend.name,
        "streams": config.slots,
        "precision": getattr(backend, "precision", None),
        "threads_per_stream": getattr(backend, "threads_per_stream", None),
        "prepare_s": prepare_s,
        "wall_s": live["wall_s"],
        "busy_check": busy,
        "interrupted": live["interrupted"],
        "unfinished_marked_failed": live["unfinished"],
        "abandoned_jobs": live["abandoned_jobs"],
        "failed_batches": len(live["failed_batches"]),
        "failures": live["failed_batches"][:20],
        "phase_view": ("observed: the backend reports phase changes"
                       if getattr(backend, "reports_phases", False) else
                       "estimated from the profile while a batch runs (docs/validation.md)"),
        "compute_vs_profile": compute_vs_profile(live["batch_log"], bundle),
        **live["overheads"],
    }
    return summary


def compute_vs_profile(batch_log: list[tuple[str, int, float, float]],
                       bundle: ProfileBundle) -> dict:
    """Live compute time per model@batch, alone and co-located, beside the profile's solo
    median: separates "the device is slower now than when profiled" from interference."""
    import numpy as np

    groups: dict[str, dict[str, list[float]]] = {}
    for model, size, compute_ms, overlap_ms in batch_log:
        key = f"{model}@{size}"
        groups.setdefault(key, {"alone": [], "co_run": []})[
            "co_run" if overlap_ms > 0 else "alone"].append(compute_ms)
    out = {}
    for key in sorted(groups):
        model, size = key.rsplit("@", 1)
        row: dict = {"profile_solo_p50_ms": bundle.solo_ms(model, int(size))}
        for part, xs in groups[key].items():
            row[part] = {"count": len(xs),
                         "p50_ms": float(np.median(xs)) if xs else None}
        out[key] = row
    return out
