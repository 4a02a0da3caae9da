"""Three-way co-location (``profile --slots 3``): three batches on three streams at once.

Why: pairs.csv tells the simulator how one co-runner slows a batch; with three slots a
batch can have two, and the truth model then combines the two pair excesses with the rule
``s = 1 + sum_i w^i (s_(i) - 1)`` (excesses largest first; docs/architecture.md). Whether
w is 1 (the excesses add, as on a time-shared device) or less (the device had idle
capacity) is a property of the device, so it is measured: these runs are what
:func:`strait_sim.truth.colocation.fit_three_way` fits w to, and what ``profile show``
compares the rule with.

A unit is one unordered triple of (model, batch) configurations whose three pairs all
have co-located runs in pairs.csv (the rule predicts from the pair slowdowns, so a triple without
them cannot be checked); the three forwards are submitted back to back on streams 0, 1, 2
and run together. Every run gives three rows of triples.csv, one per victim:

``model, batch`` (the victim), ``co_model, co_batch, co2_model, co2_batch`` (the other
two), ``rep``, ``latency_ms`` (the victim's device-timed forward), ``overlap_ms`` (how long
all three computed together), ``only_co_ms`` / ``only_co2_ms`` (how long the victim
computed beside only that co-runner: after the third ended or before it started),
``offset_ms`` (when the victim started after the first of the three), ``run_key``.

Budget and order follow pairs (:mod:`.measure_pairs`): a seeded order that covers every
triple of *models* first, a per-session budget (``triple_budget_s``) with groups too big
for what is left skipped, and a later session with the same folder continues with the
triples not done (``run_key`` counts). Repetitions are ``pair_reps``, so with 2 or more the
even ones fit w and the odd ones check it (:mod:`strait_sim.sample_split`).
"""

from __future__ import annotations

import itertools

import numpy as np

from strait_sim.profiler.backend import PhaseTiming
from strait_sim.profiler.measure_common import MeasureContext, Stopwatch
from strait_sim.profiler.measure_solo import RESULT_TIMEOUT_S, solo_median_ms

Config = tuple[str, int]
Triple = tuple[Config, Config, Config]
STREAMS = 3


def measured_pairs(pair_rows: list[dict]) -> set[frozenset[Config]]:
    """Unordered config pairs with at least one co-located run in pairs.csv (a row that is
    not a sequential baseline run: the calibration has a key for them)."""
    out: set[frozenset[Config]] = set()
    for r in pair_rows:
        try:
            if float(r.get("nominal_offset_frac", 0.0)) < 0.0:
                continue
            a = (str(r["model"]), int(r["batch"]))
            b = (str(r["co_model"]), int(r["co_batch"]))
        except (KeyError, TypeError, ValueError):
            continue
        out.add(frozenset((a, b)))
    return out


def candidate_triples(configs: list[Config], pairs: set[frozenset[Config]]) -> list[Triple]:
    """Triples (repeats allowed) whose three pairs were all measured."""
    return [t for t in itertools.combinations_with_replacement(sorted(configs), 3)
            if all(frozenset(p) in pairs for p in itertools.combinations(t, 2))]


def ordered_triples(triples: list[Triple], seed: int) -> list[Triple]:
    """A seeded order that covers every triple of models once before any repeats."""
    by_models: dict[tuple[str, ...], list[Triple]] = {}
    for t in triples:
        by_models.setdefault(tuple(sorted(c[0] for c in t)), []).append(t)
    rng = np.random.default_rng([seed, 3])
    keys = sorted(by_models)
    keys = [keys[i] for i in rng.permutation(len(keys))]
    lists = [[by_models[k][i] for i in rng.permutation(len(by_models[k]))] for k in keys]
    out: list[Triple] = []
    for round_ in itertools.zip_longest(*lists):
        out.extend(t for t in round_ if t is not None)
    return out


def run_key(t: Triple) -> str:
    return "|".join(f"{m}:{b}" for m, b in t)


def triple_rows(t: Triple, timings: list[PhaseTiming], rep: int, key: str) -> list[dict]:
    """Three rows (one per victim) from the three forwards' device timestamps."""
    spans = [(x.compute_start_s, x.compute_end_s) for x in timings]
    first = min(s for s, _ in spans)
    all_start = max(s for s, _ in spans)
    all_end = min(e for _, e in spans)
    three = max(0.0, all_end - all_start)
    rows = []
    for i in range(3):
        j, k = [n for n in range(3) if n != i]

        def both(a: int, b: int) -> float:
            return max(0.0, min(spans[a][1], spans[b][1]) - max(spans[a][0], spans[b][0]))

        rows.append({
            "model": t[i][0], "batch": t[i][1], "co_model": t[j][0], "co_batch": t[j][1],
            "co2_model": t[k][0], "co2_batch": t[k][1], "rep": rep,
            "latency_ms": timings[i].compute_ms,
            "overlap_ms": min(three * 1e3, timings[i].compute_ms),
            "only_co_ms": max(0.0, both(i, j) - three) * 1e3,
            "only_co2_ms": max(0.0, both(i, k) - three) * 1e3,
            "offset_ms": (spans[i][0] - first) * 1e3, "run_key": key})
    return rows


def run(ctx: MeasureContext) -> dict:
    """Measure 3-way co-locations within the budget; return a summary for profile.json."""
    s = ctx.settings
    backend = ctx.backend
    if getattr(backend, "streams", STREAMS) < STREAMS:
        ctx.note("triples: the backend has fewer than 3 streams; nothing measured "
                 "(profile --slots 3)")
        return {"triples_total": 0, "triples_complete": 0, "complete": False,
                "skipped": "fewer than 3 streams"}
    solo = {(m, b): solo_median_ms(ctx, m, b) for m in s.models for b in s.batches}
    configs = [c for c, v in solo.items() if v is not None]
    triples = ordered_triples(candidate_triples(configs, measured_pairs(
        ctx.store.rows["pairs.csv"])), s.seed)
    if not triples:
        ctx.note("triples: no 3-way co-location of the chosen models and batches has all "
                 "three of its pairs in pairs.csv; measure pairs first")
        return {"triples_total": 0, "triples_complete": 0, "complete": False,
                "skipped": "no triple with its pairs measured"}
    have = ctx.key_counts("triples.csv", ("run_key",))

    def reps_done(t: Triple) -> int:
        return have[(run_key(t),)] // 3  # three rows per run

    todo = [t for t in triples if reps_done(t) < s.pair_reps]
    budget = float("inf") if s.triple_budget_s is None else s.triple_budget_s
    ctx.progress.start("triples", len(triples), len(triples) - len(todo))
    watch = Stopwatch()
    spent_est = 0.0
    for i, t in enumerate(todo):
        left = s.pair_reps - reps_done(t)
        cost = left * (3.0 * max(solo[c] or 0.0 for c in t) + 1.0) / 1e3
        scale = min(3.0, max(0.3, watch.seconds / spent_est)) if spent_est > 0 else 1.0
        if i and (watch.seconds >= budget or watch.seconds + scale * cost > budget):
            continue
        spent_est += cost
        for cfg in t:
            backend.prepare(*cfg)
        key = run_key(t)
        for rep in range(reps_done(t), s.pair_reps):
            backend.synchronize()
            jobs = [backend.submit(m, b, n) for n, (m, b) in enumerate(t)]
            timings = [j.result(RESULT_TIMEOUT_S) for j in jobs]
            ctx.store.append("triples.csv", triple_rows(t, timings, rep, key))
        ctx.unit_done("triples")
    backend.synchronize()
    have = ctx.key_counts("triples.csv", ("run_key",))
    complete = sum(1 for t in triples if reps_done(t) >= s.pair_reps)
    return {"triples_total": len(triples), "triples_complete": complete,
            "complete": complete == len(triples)}
