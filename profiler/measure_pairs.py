"""Pairwise co-location: two batches on two streams, started at controlled offsets.

For each pair of (model, batch) configurations A and B, and each offset fraction f of the
shorter solo latency, A is submitted on stream 0 and B on stream 1, B held back by
``enqueue_delay(f * min(solo_A, solo_B))`` (a device-side spin on CUDA). Offsets other
than 0 are run in both orders (A first, then B first), so partial overlap is covered from
both sides.

What a row means (pairs.csv): the view of the batch whose forward *actually* started
first, from the measured timestamps: ``offset_ms`` = how long after it the co-runner
started (>= 0), ``latency_ms`` / ``co_latency_ms`` = the two forwards' device-timed
latencies, ``overlap_ms`` = how long both ran. Extra columns: ``nominal_offset_frac``,
``nominal_offset_ms``, ``run_key`` (the unit, for resuming) and the co-located copy
times.

Baseline runs: every group also runs the two configurations one after the other on their
two streams, the second submitted when the first has finished (``nominal_offset_frac``
-1, ``nominal_offset_ms`` the first's solo median, overlap 0). They time both solo
latencies at the moment the pair is measured, which pins the calibration's baseline
(docs/architecture.md, "Calibration of co-location") apart from a fixed co-location
cost; the predictors see them as runs without overlap.

Budget: the full grid grows with the square of the configurations, so the groups (one
unordered pair with all its offsets) are put in a fixed pseudo-random order (seeded) that
first covers every pair of *models* once. A session walks that order and skips any group
whose estimated cost (from the solo medians, corrected by the ratio of time spent to time
estimated so far) would take it past ``pair_budget_s``; so one huge pair does not end the
session early. A later session with the same folder continues with the groups not done.
"""

from __future__ import annotations

import itertools

import numpy as np

from strait_sim.profiler.backend import PhaseTiming
from strait_sim.profiler.measure_common import MeasureContext, Stopwatch
from strait_sim.profiler.measure_solo import RESULT_TIMEOUT_S, solo_median_ms

Config = tuple[str, int]
Variant = tuple[Config, Config, float]  # (submitted first, submitted second, offset frac)
SEQUENTIAL = -1.0  # offset "frac" of a baseline run: the second starts when the first ends


def ordered_groups(configs: list[Config], seed: int) -> list[tuple[Config, Config]]:
    """Unordered config pairs (self-pairs included), model pairs covered first."""
    by_models: dict[tuple[str, str], list[tuple[Config, Config]]] = {}
    for a, b in itertools.combinations_with_replacement(configs, 2):
        by_models.setdefault(tuple(sorted((a[0], b[0]))), []).append((a, b))  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    keys = sorted(by_models)
    keys = [keys[i] for i in rng.permutation(len(keys))]
    lists = []
    for k in keys:
        groups = by_models[k]
        lists.append([groups[i] for i in rng.permutation(len(groups))])
    out = []
    for round_ in itertools.zip_longest(*lists):
        out.extend(g for g in round_ if g is not None)
    return out


def variants(a: Config, b: Config, fracs: tuple[float, ...]) -> list[Variant]:
    out: list[Variant] = []
    for f in fracs:
        out.append((a, b, f))
        if f > 0 and a != b:
            out.append((b, a, f))
    out.append((a, b, SEQUENTIAL))
    return out


def run_key(v: Variant) -> str:
    (ma, ba), (mb, bb), f = v
    return f"{ma}:{ba}|{mb}:{bb}|{f:g}"


def pair_row(first: Config, second: Config, ta: PhaseTiming, tb: PhaseTiming, frac: float,
             nominal_ms: float, rep: int, key: str) -> dict:
    """One pairs.csv row from the view of the batch that actually started first."""
    (p, pc), (q, qc) = ((ta, first), (tb, second)) if ta.compute_start_s <= tb.compute_start_s \
        else ((tb, second), (ta, first))
    overlap = max(0.0, min(p.compute_end_s, q.compute_end_s)
                  - max(p.compute_start_s, q.compute_start_s)) * 1e3
    return {"model": pc[0], "batch": pc[1], "co_model": qc[0], "co_batch": qc[1],
            "offset_ms": (q.compute_start_s - p.compute_start_s) * 1e3, "rep": rep,
            "latency_ms": p.compute_ms, "co_latency_ms": q.compute_ms,
            "overlap_ms": min(overlap, p.compute_ms, q.compute_ms),
            "nominal_offset_frac": frac, "nominal_offset_ms": nominal_ms,
            "h2d_ms": p.h2d_ms, "co_h2d_ms": q.h2d_ms, "d2h_ms": p.d2h_ms,
            "co_d2h_ms": q.d2h_ms, "run_key": key}


def run(ctx: MeasureContext) -> dict:
    """Measure pairs within the budget; return a summary for profile.json."""
    s = ctx.settings
    solo = {(m, b): solo_median_ms(ctx, m, b) for m in s.models for b in s.batches}
    configs = [c for c in solo if solo[c] is not None]
    groups = ordered_groups(configs, s.seed)
    have = ctx.key_counts("pairs.csv", ("run_key",))

    def cost_s(v: Variant) -> float:
        a, b, f = v
        sa, sb = solo[a], solo[b]
        assert sa is not None and sb is not None
        if f == SEQUENTIAL:
            return s.pair_reps * (sa + sb + 1.0) / 1e3
        return s.pair_reps * (2.0 * max(sa, sb) + f * min(sa, sb) + 1.0) / 1e3

    todo = []
    for a, b in groups:
        left = [v for v in variants(a, b, s.offsets_frac) if have[(run_key(v),)] < s.pair_reps]
        if left:
            todo.append(left)
    budget = float("inf") if s.pair_budget_s is None else s.pair_budget_s
    # Walk the order; skip groups too big for what is left of the budget (so one huge pair
    # does not end the session early); stop starting groups once the budget is spent.
    planned = todo
    total_groups = len(groups)
    ctx.progress.start("pairs", len(planned), 0)
    watch = Stopwatch()
    backend = ctx.backend
    spent_est = 0.0  # estimated cost of the groups done, to correct the estimate as we go
    for i, left in enumerate(planned):
        scale = min(3.0, max(0.3, watch.seconds / spent_est)) if spent_est > 0 else 1.0
        c = sum(cost_s(v) for v in left)
        if i and (watch.seconds >= budget or watch.seconds + scale * c > budget):
            ctx.progress.advance("pairs")
            continue
        spent_est += c
        for v in left:
            first, second, frac = v
            key = run_key(v)
            sf, ss = solo[first], solo[second]
            assert sf is not None and ss is not None
            nominal_ms = sf if frac == SEQUENTIAL else frac * min(sf, ss)
            for cfg in (first, second):
                backend.prepare(*cfg)
            for rep in range(have[(key,)], s.pair_reps):
                backend.synchronize()
                ja = backend.submit(first[0], first[1], 0)
                if frac == SEQUENTIAL:  # baseline: the second once the first has ended
                    ta = ja.result(RESULT_TIMEOUT_S)
                    tb = backend.submit(second[0], second[1], 1).result(RESULT_TIMEOUT_S)
                else:
                    if nominal_ms > 0:
                        backend.enqueue_delay(1, nominal_ms / 1e3)
                    jb = backend.submit(second[0], second[1], 1)
                    ta, tb = ja.result(RESULT_TIMEOUT_S), jb.result(RESULT_TIMEOUT_S)
                ctx.store.append("pairs.csv", [pair_row(first, second, ta, tb, frac,
                                                        nominal_ms, rep, key)])
        ctx.unit_done("pairs")
    backend.synchronize()
    counts = ctx.key_counts("pairs.csv", ("run_key",))
    complete = sum(1 for a, b in groups
                   if all(counts[(run_key(v),)] >= s.pair_reps
                          for v in variants(a, b, s.offsets_frac)))
    return {"groups_total": total_groups, "groups_complete": complete,
            "grid_complete": complete == total_groups}
