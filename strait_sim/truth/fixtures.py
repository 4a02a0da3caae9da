"""Synthetic co-location and copy data from a KNOWN truth: test fixtures, not measurements.

Why: the calibration (:mod:`strait_sim.truth.colocation`, :mod:`strait_sim.truth.pcie`)
must be shown to recover what generated the data, with the noise a CPU shows (solo CV
about 0.08 on the development machine's bundle), before its figures on real bundles mean
anything. Everything here is drawn from the parameters given; nothing was measured.

Co-location views follow the profiler's layout (pairs.csv: the batch that started first,
its co-runner, the overlap): each batch's solo work is drawn with lognormal noise, both run
under the fluid model at 1/s while both compute, and optionally

- a fixed co-location cost (a fraction of the solo time added once when they overlap);
- a per-sample slowdown scale (s_eff = 1 + (s - 1) * scale, lognormal scale with mean 1);
- 3-way samples under the combination rule s = 1 + sum_i w^i (s_(i) - 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from strait_sim.profile_bundle import SCHEMA_VERSION, read_bundle_dir, write_meta, write_table

SlowdownFn = Callable[[str, int, str, int], float]


@dataclass
class ColocationTruth:
    models: dict[str, float] = field(default_factory=lambda: {
        "syn_a": 20.0, "syn_b": 45.0, "syn_c": 90.0})  # solo ms per item at batch 1
    batches: tuple[int, ...] = (1, 2, 4)
    solo_reps: int = 15
    pair_reps: int = 4  # the truth model sees the even ones
    offsets: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
    sequential: bool = True  # also the profiler's baseline runs: the co-runner starts
    # when the first has finished (nominal_offset_frac -1, no overlap)
    noise_cv: float = 0.08
    fixed_cost: float = 0.0  # fraction of the victim's solo time, once per co-location
    scale_sd: float = 0.0  # sd of the per-sample slowdown scale
    three_way_weight: float = 1.0
    triples_reps: int = 0

    def solo_ms(self, model: str, batch: int) -> float:
        return self.models[model] * (0.6 + 0.4 * batch)

    def slowdown(self, model: str, batch: int, co_model: str, co_batch: int) -> float:
        names = list(self.models)
        base = 1.2 + 0.15 * names.index(co_model) + 0.05 * names.index(model)
        return base * (1.0 + 0.04 * np.log2(co_batch)) * (1.0 - 0.02 * np.log2(batch))


def _lognormal(rng: np.random.Generator, cv: float) -> float:
    if cv <= 0:
        return 1.0
    sigma = float(np.sqrt(np.log1p(cv * cv)))
    return float(rng.lognormal(-sigma * sigma / 2, sigma))


def fluid_pair(a: float, c: float, offset: float, s_a: float, s_c: float
               ) -> tuple[float, float, float]:
    """(latency of A, latency of C, overlap): A starts at 0, C at ``offset``."""
    if offset >= a:
        return a, c, 0.0
    rem_a = a - offset
    t_a, t_c = rem_a * s_a, c * s_c
    if t_a <= t_c:
        return offset + t_a, t_a + (c - t_a / s_c), t_a
    return offset + t_c + (rem_a - t_c / s_a), t_c, t_c


def make_bundle(out: Path, truth: ColocationTruth | None = None, *, seed: int = 0,
                transfers: pd.DataFrame | None = None):
    """Write and load a synthetic bundle (name starts with ``synthetic``)."""
    truth = truth or ColocationTruth()
    rng = np.random.default_rng(seed)
    names = list(truth.models)
    solo = pd.DataFrame([{"model": m, "batch": b, "rep": r,
                          "latency_ms": truth.solo_ms(m, b) * _lognormal(rng, truth.noise_cv)}
                         for m in names for b in truth.batches for r in range(truth.solo_reps)])
    slow = truth.slowdown

    def scaled(s: float) -> float:
        return 1.0 + (s - 1.0) * _lognormal(rng, truth.scale_sd)

    rows = []
    configs = [(m, b) for m in names for b in truth.batches]
    for i, (m, b) in enumerate(configs):
        for cm, cb in configs[i:]:
            fracs = (*truth.offsets, -1.0) if truth.sequential else truth.offsets
            for frac in fracs:
                orders = [((m, b), (cm, cb))] + ([((cm, cb), (m, b))]
                                                 if frac > 0 and (m, b) != (cm, cb) else [])
                for (pm, pb), (qm, qb) in orders:
                    for rep in range(truth.pair_reps):
                        sa, sc = truth.solo_ms(pm, pb), truth.solo_ms(qm, qb)
                        wa = sa * _lognormal(rng, truth.noise_cv)
                        wc = sc * _lognormal(rng, truth.noise_cv)
                        off = frac * min(sa, sc) if frac >= 0 else wa * 1.001
                        la, lc, ov = fluid_pair(wa, wc, off, scaled(slow(pm, pb, qm, qb)),
                                                scaled(slow(qm, qb, pm, pb)))
                        if ov > 0:
                            la += truth.fixed_cost * sa
                            lc += truth.fixed_cost * sc
                        rows.append({"model": pm, "batch": pb, "co_model": qm, "co_batch": qb,
                                     "offset_ms": off, "rep": rep, "latency_ms": la,
                                     "co_latency_ms": lc, "overlap_ms": ov,
                                     "nominal_offset_frac": frac})
    pairs = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    write_meta(out, {"schema_version": SCHEMA_VERSION, "synthetic": True,
                     "device": {"name": "synthetic device (test fixture)", "kind": "cpu"},
                     "backend": {"name": "synthetic"}, "created": "1970-01-01T00:00:00Z",
                     "notes": "strait_sim.truth.fixtures: drawn from a known truth"})
    write_table(out, "models.csv", pd.DataFrame([
        {"model": m, "params": 0, "input_bytes_per_item": 150_528,
         "output_bytes_per_item": 4_000} for m in names]))
    write_table(out, "solo.csv", solo)
    write_table(out, "pairs.csv", pairs)
    if transfers is not None:
        write_table(out, "transfers.csv", transfers)
    if truth.triples_reps:
        triples_rows = []
        for m in names:
            for cm in names:
                for cm2 in names:
                    b = truth.batches[0]
                    for rep in range(truth.triples_reps):
                        w = truth.solo_ms(m, b) * _lognormal(rng, truth.noise_cv)
                        ex = sorted([slow(m, b, cm, b) - 1.0, slow(m, b, cm2, b) - 1.0],
                                    reverse=True)
                        s3 = 1.0 + ex[0] + truth.three_way_weight * ex[1]
                        # all three start together and the co-runners outlast the victim
                        triples_rows.append({"model": m, "batch": b, "co_model": cm,
                                             "co_batch": b, "co2_model": cm2, "co2_batch": b,
                                             "rep": rep, "latency_ms": w * s3,
                                             "overlap_ms": w * s3, "only_co_ms": 0.0,
                                             "only_co2_ms": 0.0})
        pd.DataFrame(triples_rows).to_csv(out / "triples.csv", index=False)
    return read_bundle_dir(out, name="synthetic-colocation")


def make_transfers(rule: str, *, seed: int = 0, cv: float = 0.03, share: float = 1.0,
                   opposite: float = 1.0, fixed_ms: float = 0.01,
                   gbps: float = 12.0) -> pd.DataFrame:
    """transfers.csv rows from a known sharing rule.

    ``rule``: "fair" (n copies each get 1/n of the bandwidth: aggregate 1), "serial" (one
    copy engine: copies run one after another, the round's copies end at 1, 2, ... n
    times the lone time: aggregate 1) or "partial" (n copies each get
    ``share_n = 1 / (1 + (n - 1) * share)`` of the lone bandwidth: aggregate
    ``n / (1 + (n - 1) share)``, fair share at share = 1). ``opposite`` multiplies the
    bandwidth while the other direction is active.
    """
    rng = np.random.default_rng(seed)
    bw = gbps * 1e9 / 1e3
    rows = []
    for d in ("h2d", "d2h"):
        for size in (4096, 65536, 1 << 20, 16 << 20, 64 << 20):
            for n in (1, 2, 4):
                for opp in (0, 1):
                    b = bw * (opposite if opp else 1.0)
                    for rep in range(3):
                        for lane in range(n):
                            if rule == "serial":
                                t = fixed_ms + (lane + 1) * size / b
                            elif rule == "fair":
                                t = fixed_ms + n * size / b
                            else:
                                t = fixed_ms + (1 + (n - 1) * share) * size / b
                            rows.append({"direction": d, "bytes": size, "concurrent": n,
                                         "opposite_active": opp, "rep": rep, "lane": lane,
                                         "time_ms": t * _lognormal(rng, cv)})
    return pd.DataFrame(rows)
