"""Solo latency: each (model, batch) alone on stream 0, the other streams idle.

Raw samples after warm-up (``prepare`` warms every stream; ``settings.warmup`` more runs
on stream 0 right before the samples, so caches and clocks are in their serving state).
``latency_ms`` is the device-timed forward; copy-in and copy-out times are kept beside it
(``h2d_ms``, ``d2h_ms``). A unit interrupted half way keeps its samples; a resumed run
takes only the missing repetitions.
"""

from __future__ import annotations

from strait_sim.errors import UserError
from strait_sim.profiler.backend import BackendError
from strait_sim.profiler.measure_common import MeasureContext
from strait_sim.profiler.model_fingerprint import COLUMN as FINGERPRINT_COLUMN
from strait_sim.profiler.model_fingerprint import spec_fingerprint

RESULT_TIMEOUT_S = 600.0


def solo_units(ctx: MeasureContext) -> list[tuple[str, int]]:
    return [(m, b) for m in ctx.settings.models for b in ctx.settings.batches]


def model_row(ctx: MeasureContext, model: str) -> dict:
    spec = ctx.backend.spec(model)  # type: ignore[attr-defined]
    precision = ctx.backend.precision  # type: ignore[attr-defined]
    return {"model": model, "params": ctx.backend.params(model),  # type: ignore[attr-defined]
            "input_bytes_per_item": spec.input_bytes_per_item(precision),
            "output_bytes_per_item": spec.output_bytes_per_item(precision),
            "input_dtype": spec.input_dtype, "description": spec.description,
            # which definition was timed: live runs compare it with the zoo's
            FINGERPRINT_COLUMN: spec_fingerprint(spec)}


def check_same_definitions(ctx: MeasureContext) -> None:
    """Refuse to add samples of a model whose definition differs from the one the bundle
    already timed under that name (a resumed bundle must describe one network)."""
    for row in ctx.store.rows["models.csv"]:
        model = str(row["model"])
        was = row.get(FINGERPRINT_COLUMN)
        if model not in ctx.settings.models or not isinstance(was, str) or not was:
            continue
        now = spec_fingerprint(ctx.backend.spec(model))  # type: ignore[attr-defined]
        if was != now:
            raise UserError(f"{ctx.store.folder}: the bundle timed a different '{model}' "
                            f"(architecture {was}; the zoo's is {now}); profile into a new "
                            f"--out folder")


def run(ctx: MeasureContext, units: list[tuple[str, int]] | None = None) -> None:
    units = solo_units(ctx) if units is None else units
    check_same_definitions(ctx)
    reps = ctx.settings.reps
    have = ctx.key_counts("solo.csv", ("model", "batch"))
    ctx.progress.start("solo", len(units), sum(1 for u in units if have[u] >= reps))
    failed = {str(r) for r in ctx.store.meta.get("failed_units", [])}
    backend = ctx.backend
    for model, batch in units:
        missing = reps - have[(model, batch)]
        if missing <= 0 or f"{model}@{batch}" in failed:
            continue
        try:
            backend.prepare(model, batch)
            for _ in range(ctx.settings.warmup):
                backend.submit(model, batch, 0).result(RESULT_TIMEOUT_S)
        except BackendError as exc:  # e.g. out of memory at a large batch: skip, say so
            ctx.note(f"solo {model} batch {batch} skipped: {exc}")
            ctx.store.meta.setdefault("failed_units", []).append(f"{model}@{batch}")
            ctx.unit_done("solo")
            continue
        first = have[(model, batch)]
        row = model_row(ctx, model)
        try:
            for rep in range(first, reps):
                t = backend.submit(model, batch, 0).result(RESULT_TIMEOUT_S)
                ctx.store.append("solo.csv", [{
                    "model": model, "batch": batch, "rep": rep,
                    "latency_ms": t.compute_ms, "h2d_ms": t.h2d_ms, "d2h_ms": t.d2h_ms}])
                ctx.store.ensure_model(row)  # listed once it has a sample: bundle stays valid
        finally:
            backend.synchronize()
        ctx.unit_done("solo")


def solo_median_ms(ctx: MeasureContext, model: str, batch: int) -> float | None:
    vals = sorted(float(r["latency_ms"]) for r in ctx.store.select("solo.csv", model=model,
                                                                   batch=batch))
    return vals[len(vals) // 2] if vals else None
