"""One profiling session: open (or resume) a bundle, run the chosen parts, record it all.

profile.json gathers what DESIGN.md section 4 asks for (device with clocks, host,
backend, software, created, concurrency measured, notes) plus ``parts`` (per part: total
seconds over all sessions, whether it is complete, units done) and ``sessions`` (each
session's command, settings, start/end, clocks before and after, load average, whether it
was interrupted). It is rewritten atomically after every unit of work.

Resuming refuses a bundle measured on another device, backend or precision: samples of
two devices must never be mixed in one bundle.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from strait_sim.errors import UserError
from strait_sim.profile_bundle import SCHEMA_VERSION
from strait_sim.profiler import (
    measure_kernels,
    measure_pairs,
    measure_solo,
    measure_transfers,
    measure_triples,
    measure_utilization,
)
from strait_sim.profiler.backend import Backend
from strait_sim.profiler.bundle_store import BundleStore
from strait_sim.profiler.device_info import host_info
from strait_sim.profiler.measure_common import PARTS, MeasureContext, Progress, Settings


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clocks(backend: Backend) -> dict:
    fn = getattr(backend, "clocks", None)
    if fn is not None:
        try:
            return fn()
        except Exception as exc:  # never fail a profile over a clock query
            return {"error": str(exc)}
    from strait_sim.profiler.device_info import cpu_device_info

    return cpu_device_info()["clocks"]


def _backend_meta(backend: Backend) -> dict:
    return {"name": backend.name, "precision": getattr(backend, "precision", None),
            "cuda_graphs": bool(getattr(backend, "cuda_graphs", False)),
            "streams": getattr(backend, "streams", None),
            "threads_per_stream": getattr(backend, "threads_per_stream", None)}


#: Backend settings every sample of one bundle must share (they change the times), as
#: profile.json's ``backend`` names them, with how a refusal says them. ``streams`` is not
#: one: a resumed session may add streams (``--slots 3`` for triples), and a CPU stream's
#: speed is set by its threads, which are checked.
SAME_BACKEND_SETTINGS = {"name": "backend name", "precision": "backend precision",
                         "cuda_graphs": "CUDA graphs", "threads_per_stream": "threads per stream"}


def _check_same_device(meta: dict, device: dict, backend: dict, folder: Path) -> None:
    """Refuse to resume a bundle on another device or with other backend settings: the
    docs promise every sample of one bundle ran with the same settings, and mixed samples
    would be averaged into one profile without a trace. A setting the bundle did not
    record (older bundles) cannot be checked and is let through."""
    old_dev, old_be = meta.get("device", {}), meta.get("backend", {})
    if old_dev.get("name") != device.get("name") or old_dev.get("kind") != device.get("kind"):
        raise UserError(f"{folder}: bundle was measured on '{old_dev.get('name')}', this is "
                        f"'{device.get('name')}'; use a new --out folder")
    for key, label in SAME_BACKEND_SETTINGS.items():
        if key not in ("name", "precision") and old_be.get(key) is None:
            continue
        if old_be.get(key) != backend.get(key):
            raise UserError(f"{folder}: bundle was measured with {label} "
                            f"'{old_be.get(key)}', this run uses '{backend.get(key)}'; "
                            f"use a new --out folder")


def add_note(meta: dict, note: str) -> None:
    lines = [ln for ln in str(meta.get("notes", "")).splitlines() if ln]
    if note and note not in lines:
        lines.append(note)
    meta["notes"] = "\n".join(lines)


def run_session(out: Path | str, make: Callable[[], Backend], settings: Settings, *,
                progress: Progress | None = None, command: str = "", notes: tuple[str, ...] = (),
                model_files: tuple[str, ...] = ()) -> BundleStore:
    """Measure ``settings.parts`` into the bundle at ``out``; return the store.

    Ctrl-C (KeyboardInterrupt) stops the session after recording it as interrupted; every
    sample taken so far is on disk and the exception propagates.
    """
    unknown = [p for p in settings.parts if p not in PARTS]
    if unknown:
        raise UserError(f"unknown part(s) {', '.join(unknown)}; valid: {', '.join(PARTS)}")
    store = BundleStore(out)
    progress = progress or Progress()
    backend = make()
    try:
        device = backend.device_info()
        software = device.pop("software", {})
        be = _backend_meta(backend)
        if store.exists:
            _check_same_device(store.meta, device, be, store.folder)
        else:
            store.meta = {"schema_version": SCHEMA_VERSION, "device": device, "host": host_info(),
                          "backend": be, "software": software, "created": utc_now(),
                          "concurrency_measured": 2, "parts": {}, "sessions": [], "notes": ""}
        meta = store.meta
        meta["device_latest"] = device
        meta["software"] = software
        meta["transfer_concurrency"] = list(settings.transfer_concurrency)
        for n in notes:
            add_note(meta, n)
        session = {"started": utc_now(), "command": command, "parts": list(settings.parts),
                   "settings": asdict(settings), "clocks_start": _clocks(backend),
                   "load_average_start": list(os.getloadavg()), "interrupted": False,
                   "pid": os.getpid()}
        meta.setdefault("sessions", []).append(session)
        t_session = time.perf_counter()
        current: dict = {"part": None, "t0": 0.0, "base": 0.0}

        def on_unit_done(part: str) -> None:
            _account(meta, current)
            store.flush()

        ctx = MeasureContext(backend, store, settings, progress, on_unit_done=on_unit_done)
        wanted = list(settings.parts)
        if any(p in wanted for p in ("pairs", "triples", "kernels", "utilization")) \
                and "solo" not in wanted:
            wanted.insert(0, "solo")  # they need solo samples of the same units
            progress.note("solo samples are needed first; measuring the missing ones")
        store.flush()
        try:
            for part in [p for p in PARTS if p in wanted]:
                info = meta["parts"].setdefault(part, {"seconds": 0.0, "completed": False})
                current.update(part=part, t0=time.perf_counter(), base=info["seconds"])
                extra = _run_part(part, ctx, model_files)
                _account(meta, current)
                info.update(extra or {})
                info["completed"] = _part_complete(part, ctx, extra)
                session.setdefault("part_seconds", {})[part] = round(
                    time.perf_counter() - current["t0"], 3)
                current["part"] = None
                store.flush()
        except KeyboardInterrupt:
            session["interrupted"] = True
            raise
        finally:
            _account(meta, current)
            for n in ctx.notes:
                add_note(meta, n)
            session["ended"] = utc_now()
            session["seconds"] = round(time.perf_counter() - t_session, 3)
            session["clocks_end"] = _clocks(backend)
            session["load_average_end"] = list(os.getloadavg())
            if getattr(backend, "eager_fallbacks", None):
                meta["backend"]["cuda_graph_fallbacks"] = dict(backend.eager_fallbacks)  # type: ignore[attr-defined]
            store.flush()
    finally:
        backend.close()
    return store


def _account(meta: dict, current: dict) -> None:
    part = current.get("part")
    if part is None:
        return
    info = meta["parts"][part]
    info["seconds"] = round(current["base"] + time.perf_counter() - current["t0"], 3)


def _run_part(part: str, ctx: MeasureContext, model_files: tuple[str, ...]) -> dict | None:
    if part == "solo":
        measure_solo.run(ctx)
        return {"reps": ctx.settings.reps, "warmup": ctx.settings.warmup}
    if part == "pairs":
        out = measure_pairs.run(ctx)
        out.update(reps=ctx.settings.pair_reps, offsets_frac=list(ctx.settings.offsets_frac),
                   budget_s_per_session=ctx.settings.pair_budget_s)
        return out
    if part == "triples":
        out = measure_triples.run(ctx)
        out.update(reps=ctx.settings.pair_reps,
                   budget_s_per_session=ctx.settings.triple_budget_s)
        if ctx.store.rows["triples.csv"]:
            ctx.store.meta["concurrency_measured"] = max(
                3, int(ctx.store.meta.get("concurrency_measured", 2)))
        return out
    if part == "transfers":
        measure_transfers.run(ctx)
        return {"reps": ctx.settings.transfer_reps,
                "sizes": list(ctx.settings.transfer_sizes),
                "concurrency": list(ctx.settings.transfer_concurrency)}
    if part == "kernels":
        return measure_kernels.run(ctx)
    return measure_utilization.run(ctx, model_files)


def _part_complete(part: str, ctx: MeasureContext, extra: dict | None) -> bool:
    s = ctx.settings
    failed = set(ctx.store.meta.get("failed_units", []))
    if part == "solo":
        have = ctx.key_counts("solo.csv", ("model", "batch"))
        return all(have[(m, b)] >= s.reps or f"{m}@{b}" in failed
                   for m in s.models for b in s.batches)
    if part == "pairs":
        return bool(extra and extra.get("grid_complete"))
    if part == "triples":
        return bool(extra and extra.get("complete"))
    if part == "transfers":
        have = ctx.key_counts("transfers.csv", ("direction", "bytes", "concurrent",
                                                "opposite_active", "rep"))
        units = measure_transfers.transfer_units(ctx)
        reps = {u: 0 for u in units}
        for key in have:
            if key[:4] in reps:
                reps[key[:4]] += 1
        return all(v >= s.transfer_reps for v in reps.values())
    if part == "kernels":
        have = ctx.key_counts("kernels.csv", ("model", "batch"))
        return all(have[(m, b)] or f"{m}@{b}" in failed for m in s.models for b in s.batches)
    if extra and "skipped" in extra:
        return False
    have = ctx.key_counts("utilization.csv", ("model", "batch"))
    return all(have[(m, b)] for m in s.models for b in s.batches)
