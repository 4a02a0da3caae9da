"""Bare copies between pinned host memory and the device, alone and under contention.

For each direction, size (4 KiB to 256 MiB by default, powers of 4), number of copies
running at once in that direction (1, 2, 4: ``concurrent``, this one included) and with
or without the opposite direction busy (``opposite_active``), ``transfer_reps`` rounds
are timed with device events. Each round: the lanes are aligned (a device-side gate on
CUDA, a barrier on the CPU) so the ``concurrent`` copies really start together; with the
opposite direction active, one more lane runs ``concurrent + 2`` back-to-back copies of
the same size the other way, released by the same gate. Every copy of a round is one row
(so a round with 4 concurrent copies gives 4 rows with the same ``rep``). Extra columns:
``lane``, ``opposite_overlap_frac`` (how much of this copy the opposite traffic covered,
measured) and ``start_spread_us`` (how far apart the round's copies started).

On ``torch-cpu`` there is no link: both "directions" are memcpy in host memory.
"""

from __future__ import annotations

from strait_sim.profiler.backend import TransferTiming
from strait_sim.profiler.measure_common import MeasureContext
from strait_sim.profiler.measure_solo import RESULT_TIMEOUT_S

OPPOSITE = {"h2d": "d2h", "d2h": "h2d"}


def transfer_units(ctx: MeasureContext) -> list[tuple[str, int, int, int]]:
    s = ctx.settings
    return [(d, n, k, o) for d in ("h2d", "d2h") for n in s.transfer_sizes
            for k in s.transfer_concurrency for o in (0, 1)]


def _covered(t: TransferTiming, others: list[TransferTiming]) -> float:
    span = t.end_s - t.start_s
    if span <= 0:
        return 0.0
    got = sum(max(0.0, min(t.end_s, o.end_s) - max(t.start_s, o.start_s)) for o in others)
    return min(1.0, got / span)


def run(ctx: MeasureContext) -> None:
    units = transfer_units(ctx)
    reps = ctx.settings.transfer_reps
    have = ctx.key_counts("transfers.csv", ("direction", "bytes", "concurrent",
                                            "opposite_active", "rep"))
    rounds = {}
    for key in have:
        rounds[key[:4]] = rounds.get(key[:4], 0) + 1
    ctx.progress.start("transfers", len(units), sum(1 for u in units if rounds.get(u, 0) >= reps))
    backend = ctx.backend
    todo_units = [u for u in units if rounds.get(u, 0) < reps]
    try:
        if todo_units:  # allocate every lane's buffers at the largest size, untimed, so
            # that no allocation (pinned or device) falls inside a timed, gated round
            biggest = max(u[1] for u in todo_units)
            opp_lane = max(ctx.settings.transfer_concurrency) + 1
            lanes_used = [*range(max(ctx.settings.transfer_concurrency)), opp_lane]
            warm = [backend.transfer(d, biggest, lane) for lane in lanes_used
                    for d in ("h2d", "d2h")]
            for j in warm:
                j.result(RESULT_TIMEOUT_S)
        for unit in units:
            direction, nbytes, k, opp = unit
            done = {key[4] for key in have if key[:4] == unit}
            todo = [r for r in range(reps) if r not in done]
            if not todo:
                continue
            lanes = list(range(k))
            opp_lane = max(ctx.settings.transfer_concurrency) + 1
            for rep in todo:
                backend.synchronize()
                backend.align_copy_lanes(lanes + ([opp_lane] if opp else []))
                opp_jobs = [backend.transfer(OPPOSITE[direction], nbytes, opp_lane)
                            for _ in range(k + 2)] if opp else []
                jobs = [backend.transfer(direction, nbytes, lane) for lane in lanes]
                times = [j.result(RESULT_TIMEOUT_S) for j in jobs]
                opp_times = [j.result(RESULT_TIMEOUT_S) for j in opp_jobs]
                spread = (max(t.start_s for t in times) - min(t.start_s for t in times)) * 1e6
                ctx.store.append("transfers.csv", [{
                    "direction": direction, "bytes": nbytes, "concurrent": k,
                    "opposite_active": opp, "rep": rep, "time_ms": max(t.ms, 1e-6),
                    "lane": lane, "opposite_overlap_frac": _covered(t, opp_times),
                    "start_spread_us": spread} for lane, t in zip(lanes, times, strict=True)])
            ctx.unit_done("transfers")
    finally:
        backend.synchronize()
        release = getattr(backend, "release_transfer_buffers", None)
        if release is not None:
            release()
