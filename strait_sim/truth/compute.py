"""Compute truth: solo times sampled from measurements, co-location slowdowns from pairs.

Solo time of (model, batch) is drawn from the measured samples. For batch sizes between
measured ones the quantile functions of the two neighbours are interpolated linearly in
the batch size; beyond the largest (or below the smallest) measured batch the nearest
quantile function is scaled by the ratio of interpolated/extrapolated medians.

Co-location follows a fluid model: while a batch shares the device with co-runners it
progresses at 1/s of its solo rate. The slowdowns come from the statistical calibration in
:mod:`strait_sim.truth.colocation` (both views of every pair sample, a fixed cost where the
data show one, shrinkage across the batch sizes of a model pair, a prior instead of a
clamp, per-key uncertainty; docs/architecture.md, "Calibration").

Extrapolations (counted by :meth:`ComputeTruth.extrapolation`, documented in
docs/architecture.md):
- batch sizes between measured ones: bilinear in (log2 batch, log2 co_batch) over the
  measured grid of the model pair (monotone between neighbours), flat beyond it;
- a model pair never measured: the mean pooled slowdown of that model as victim over its
  measured co-runners, else the mean over all pairs, else 1 (no pairs at all);
- more co-runners than measured: s = 1 + sum_i w^i (s_(i) - 1), excesses largest first,
  w fitted from 3-way samples where ``profile --slots 3`` measured them, else 1 (additive).
- each batch draws a slowdown scale once (:meth:`sample_slowdown_scale`) from the
  residual spread of its victim model, so the simulated tail has the measured spread.

What a run actually leaned on is tallied as it goes (:meth:`note_compute`, called by the
device once per batch when its compute ends, off the per-event path): the batch-seconds a
batch overlapped each co-runner, by where that key's slowdown came from (``ORIGINS``:
measured and identified, interpolated between measured batch sizes, measured but not
identified by its samples, beyond the measured batch range, a model pair never measured),
and the batches by the least supported key they met. Beside two co-runners at once (3+
slots) a second overlaps both, so those overlaps are co-runner-seconds; the spans beside
several co-runners are tallied too, so the shares of compute time count a second once.
:meth:`run_extrapolation` gives the summary's ``truth`` block;
:func:`extrapolation_warning` the line the CLI prints when a large share of the simulated
compute time ran at slowdowns the profile did not measure.
"""

from __future__ import annotations

import numpy as np

from strait_sim.profile_bundle import ProfileBundle
from strait_sim.truth.colocation import (
    MIN_SPREAD,
    Calibration,
    calibrate_bundle,
    interpolate_pair,
)

QUANTILES = 64
# where a (model, batch, co_model, co_batch) slowdown comes from, best supported first
ORIGINS = ("measured", "interpolated", "unidentified", "beyond_range", "pair_not_measured")
EXTRAPOLATED_WARN_SHARE = 0.25  # of the run's compute batch-seconds


class ComputeTruth:
    """Samples solo compute times and looks up slowdowns, by model index."""

    def __init__(self, profile: ProfileBundle, models: tuple[str, ...], max_batch: int,
                 rng: np.random.Generator, *, interference: bool = True) -> None:
        self.models = models
        self.max_batch = max_batch
        self.rng = rng
        self.interference = interference
        self._solo_q = np.stack([self._solo_quantiles(profile, m, max_batch) for m in models])
        self.calibration = calibrate_bundle(profile) if interference else Calibration()
        # The slowdown table is models x max_batch x models x max_batch: built per victim
        # model on its first use (issue 15), so 100 models or interference off do not pay
        # for models^2 x batches^2 cells the run never reads.
        self._slow_rows: list[np.ndarray | None] = [None] * len(models)
        self._pair_summary: tuple | None = None
        self._combine = self.calibration.three_way.combine
        self._additive = self.calibration.three_way.weight == 1.0
        self._scale_l = [self.calibration.scale_quantiles(m).tolist() for m in models]
        self._scale_const = [bool(np.all(np.asarray(q) == 1.0)) for q in self._scale_l]
        # an independent stream for the scales: spawning does not advance ``rng``, so the
        # solo draws are the same whether or not the caller asks for scales
        self._scale_rng = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0]) \
            if hasattr(rng.bit_generator, "seed_seq") else np.random.default_rng(0)
        self._scale_draws: list[int] = []
        self._scale_next = 0
        # Nested lists for the per-event lookups: indexing a list is several times
        # cheaper than indexing an array and gives the same doubles.
        self._solo_l: list = self._solo_q.tolist()
        # The slowdown table is n x max_batch x n x max_batch: converted row by row on
        # first use, so a large --max-batch does not pay for rows it never touches.
        self._slow_l: list[list[list | None]] = [[None] * max_batch for _ in models]
        self._draws: list[int] = []
        self._next = 0
        # what the run leaned on (note_compute): filled as batches end their compute
        self._index = {m: i for i, m in enumerate(models)}
        self._origin_of: dict[tuple[int, int, str, int], int] = {}
        self._pair_grids: dict[tuple[str, str], tuple[int, int, int, int]] | None = None
        self.compute_s = 0.0
        self.batches_computed = 0
        self.overlap_s = [0.0] * len(ORIGINS)  # co-runner-seconds: one per co-runner
        # what the overlaps count more than once (beside 2+ co-runners at once, 3+ slots):
        # at any key, and at keys other than "measured" (see _uncount_crowded)
        self.repeat_s = 0.0
        self.repeat_extrapolated_s = 0.0
        self.batches_by_origin = [0] * len(ORIGINS)
        self.multi_co_rates = 0  # rate changes with 2+ co-runners (the 3-way rule)

    # -- solo -------------------------------------------------------------------------------
    @staticmethod
    def _solo_quantiles(profile: ProfileBundle, model: str, max_batch: int) -> np.ndarray:
        """(max_batch, QUANTILES) table of solo-time quantiles in ms, batch b at row b-1."""
        probs = (np.arange(QUANTILES) + 0.5) / QUANTILES
        samples = profile.solo[profile.solo["model"] == model]
        measured = {int(b): np.quantile(g["latency_ms"].to_numpy(), probs)
                    for b, g in samples.groupby("batch")}
        xs = np.array(sorted(measured), dtype=float)
        table = np.empty((max_batch, QUANTILES))
        for b in range(1, max_batch + 1):
            if b in measured:
                table[b - 1] = measured[b]
            elif xs[0] < b < xs[-1]:
                hi = int(np.searchsorted(xs, b))
                lo_b, hi_b = xs[hi - 1], xs[hi]
                w = (b - lo_b) / (hi_b - lo_b)
                table[b - 1] = (1 - w) * measured[int(lo_b)] + w * measured[int(hi_b)]
            else:
                ref = int(xs[0] if b < xs[0] else xs[-1])
                scale = profile.solo_ms(model, b) / profile.solo_ms(model, ref)
                table[b - 1] = measured[ref] * scale
        return table

    def sample_solo_ms(self, model_idx: int, batch: int) -> float:
        """One draw of the solo compute time (ms)."""
        if self._next >= len(self._draws):
            self._draws = self.rng.integers(0, QUANTILES, 65536).tolist()
            self._next = 0
        q = self._draws[self._next]
        self._next += 1
        return self._solo_l[model_idx][batch - 1][q]

    # -- co-location -------------------------------------------------------------------------
    def slowdown(self, model_idx: int, batch: int, co: list[tuple[int, int]]) -> float:
        """Slowdown of (model, batch) while the co-runners ``co`` [(model, batch)] run."""
        if not co:
            return 1.0
        table = self._slow_l[model_idx][batch - 1]
        if table is None:
            table = self._slow_row(model_idx, batch)
        if len(co) > 1:
            self.multi_co_rates += 1
        if len(co) == 1 or self._additive:
            excess = 0.0
            for cm, cb in co:
                excess += table[cm][cb - 1] - 1.0
            return 1.0 + excess
        return self._combine([table[cm][cb - 1] - 1.0 for cm, cb in co])

    def slowdown_beside(self, model_idx: int, batch: int, co_idx: int, co_batch: int
                        ) -> float:
        """:meth:`slowdown` beside exactly one co-runner (the same value, without the
        list: the device's two-batch path calls it twice per co-location change)."""
        table = self._slow_l[model_idx][batch - 1]
        if table is None:
            table = self._slow_row(model_idx, batch)
        return 1.0 + (table[co_idx][co_batch - 1] - 1.0)

    def _slow_row(self, model_idx: int, batch: int) -> list:
        """The nested-list row of (model, batch) against every (co-model, co-batch), made
        on first use (the per-event look-ups read these lists, not the numpy table)."""
        row = self._slow_l[model_idx][batch - 1] = \
            self._victim_rows(model_idx)[batch - 1].tolist()
        return row

    def sample_slowdown_scale(self, model_idx: int, size: int) -> float:
        """One draw (per batch, at its compute start) of the slowdown scale: the engine
        applies s_eff = 1 + (s - 1) * scale. Mean 1; exactly 1 where the residuals show no
        spread beyond the solo noise."""
        if not self.interference or self._scale_const[model_idx]:
            return 1.0
        if self._scale_next >= len(self._scale_draws):
            self._scale_draws = self._scale_rng.integers(0, QUANTILES, 65536).tolist()
            self._scale_next = 0
        q = self._scale_draws[self._scale_next]
        self._scale_next += 1
        return self._scale_l[model_idx][q]

    def pair_slowdown(self, model_idx: int, batch: int, co_idx: int, co_batch: int) -> float:
        return float(self._victim_rows(model_idx)[batch - 1, co_idx, co_batch - 1])

    def _victim_rows(self, i: int) -> np.ndarray:
        """The slowdown table's rows of victim model ``i``: (max_batch, models, max_batch)."""
        rows = self._slow_rows[i]
        if rows is None:
            n, mb = len(self.models), self.max_batch
            if not self.interference or not self.calibration.keys:
                rows = np.ones((mb, n, mb))
            else:
                if self._pair_summary is None:
                    self._pair_summary = _pair_summary(self.calibration)
                rows = _victim_table(self._pair_summary, self.models, mb, i)
            self._slow_rows[i] = rows
        return rows

    @staticmethod
    def fit_pair_slowdowns(profile: ProfileBundle) -> dict[tuple[str, int, str, int], float]:
        """Effective slowdown (fixed cost included) per measured key, truth reps only."""
        cal = calibrate_bundle(profile)
        return {k: f.effective_slowdown for k, f in cal.keys.items()}

    @staticmethod
    def _slowdown_table_from(cal: Calibration, models: tuple[str, ...],
                             max_batch: int) -> np.ndarray:
        """The whole table at once (the lazy rows are its slices)."""
        n = len(models)
        if not cal.keys:
            return np.ones((n, max_batch, n, max_batch))
        summary = _pair_summary(cal)
        return np.stack([_victim_table(summary, models, max_batch, i) for i in range(n)])

    # -- what the run leaned on ---------------------------------------------------------
    def note_compute(self, model_idx: int, size: int, co: dict, compute_s: float,
                     crowded: list[tuple[float, tuple[int, ...]]] | None = None) -> None:
        """A batch ended its compute after ``compute_s`` seconds beside the co-runners
        ``co`` (the device's record: batch id -> [model, size, overlap seconds]); the
        spans ``crowded`` [(seconds, co-runner batch ids)] it spent beside two or more
        of them at once (3+ slots; None: never) are where those overlaps add up to more
        than the time beside anyone."""
        self.compute_s += compute_s
        self.batches_computed += 1
        if not co or not self.interference:
            return
        worst = -1
        origin_of = self._origin_of
        for cm, cb, overlap in co.values():
            if overlap <= 0.0:
                continue
            key = (model_idx, size, cm, cb)
            k = origin_of.get(key)
            if k is None:
                k = origin_of[key] = self._origin(model_idx, size, cm, cb)
            self.overlap_s[k] += overlap
            if k > worst:
                worst = k
        if worst >= 0:
            self.batches_by_origin[worst] += 1
        if crowded:
            self._uncount_crowded(model_idx, size, co, crowded)

    def _uncount_crowded(self, model_idx: int, size: int, co: dict,
                         crowded: list[tuple[float, tuple[int, ...]]]) -> None:
        """Tally what the per-co-runner overlaps count more than once, so the shares are
        of compute time: ``dt`` seconds beside ``n`` co-runners add ``n * dt`` to the
        overlaps but ``dt`` to the time beside anyone (``n - 1`` repeats), and beside
        ``e >= 1`` co-runners at keys not "measured" ``e - 1`` repeats of the time beside
        an extrapolated key. Every co-runner of a span overlapped it, so its origin is
        already in ``_origin_of`` (note_compute looked it up)."""
        origin_of = self._origin_of
        repeat = repeat_off = 0.0
        for dt, ids in crowded:
            repeat += (len(ids) - 1) * dt
            off = 0
            for i in ids:
                cm, cb, _ = co[i]
                if origin_of[(model_idx, size, cm, cb)] > 0:
                    off += 1
            if off > 1:
                repeat_off += (off - 1) * dt
        self.repeat_s += repeat
        self.repeat_extrapolated_s += repeat_off

    def _origin(self, model_idx: int, size: int, co_model: str, co_size: int) -> int:
        """Index in ORIGINS of where the slowdown of this key comes from."""
        model = self.models[model_idx]
        fit = self.calibration.keys.get((model, size, co_model, co_size))
        if fit is not None:
            return ORIGINS.index("measured" if fit.identified else "unidentified")
        if self._pair_grids is None:
            grids: dict[tuple[str, str], list[int]] = {}
            for m, b, cm, cb in self.calibration.keys:
                g = grids.setdefault((m, cm), [b, b, cb, cb])
                g[0], g[1] = min(g[0], b), max(g[1], b)
                g[2], g[3] = min(g[2], cb), max(g[3], cb)
            self._pair_grids = {p: (g[0], g[1], g[2], g[3]) for p, g in grids.items()}
        grid = self._pair_grids.get((model, co_model))
        if grid is None:
            return ORIGINS.index("pair_not_measured")
        b_lo, b_hi, cb_lo, cb_hi = grid
        inside = b_lo <= size <= b_hi and cb_lo <= co_size <= cb_hi
        return ORIGINS.index("interpolated" if inside else "beyond_range")

    def run_extrapolation(self) -> dict:
        """The summary's ``truth`` block: the profile's coverage (:meth:`extrapolation`)
        and what this run leaned on, by ORIGINS (overlap co-runner-seconds, one per
        co-runner; batches by the least supported key they met), and the shares of the
        run's compute batch-seconds spent beside at least one co-runner
        (``co_located_share``) and beside at least one at a key not measured and
        identified (``extrapolated_share``): at most 1, the repeats of 3+ slots taken
        out (with 2 slots there are none: the overlaps are already times)."""
        out = self.extrapolation()
        co_s = sum(self.overlap_s) - self.repeat_s
        off = sum(self.overlap_s[1:]) - self.repeat_extrapolated_s
        out.update({
            "interference": self.interference,
            "compute_s": self.compute_s,
            "batches_computed": self.batches_computed,
            "co_located_batches": sum(self.batches_by_origin),
            "batches_by_origin": dict(zip(ORIGINS, self.batches_by_origin, strict=True)),
            "overlap_s": dict(zip(ORIGINS, self.overlap_s, strict=True)),
            "co_located_share": co_s / self.compute_s if self.compute_s > 0 else 0.0,
            "extrapolated_share": off / self.compute_s if self.compute_s > 0 else 0.0,
            "multi_co_rate_changes": self.multi_co_rates,
        })
        return out

    def extrapolation(self) -> dict:
        """What the truth model had to invent: counts for the run's summary."""
        cal = self.calibration
        measured_pairs = {(m, cm) for m, _, cm, _ in cal.keys}
        names = self.models
        missing = [(a, b) for a in names for b in names if (a, b) not in measured_pairs]
        return {"pair_keys": len(cal.keys), "unidentified_keys": len(cal.unidentified),
                "model_pairs_never_measured": len(missing) if cal.keys else 0,
                "three_way_weight": cal.three_way.weight,
                "three_way_points": cal.three_way.points}


def _pair_summary(cal: Calibration) -> tuple:
    """What every victim row needs: measured fits per model pair, their pooled slowdowns,
    the pooled slowdowns per victim model and their global mean (for unmeasured pairs)."""
    by_pair: dict[tuple[str, str], dict[tuple[int, int], float]] = {}
    for (m, b, cm, cb), f in cal.keys.items():
        by_pair.setdefault((m, cm), {})[(b, cb)] = f.effective_slowdown
    pooled = {p: float(np.median(list(d.values()))) if not cal.pairs.get(p) else
              _pooled_effective(cal, p) for p, d in by_pair.items()}
    by_victim: dict[str, list[float]] = {}
    for (m, _), s in pooled.items():
        by_victim.setdefault(m, []).append(s)
    return by_pair, pooled, by_victim, float(np.mean(list(pooled.values())))


def _victim_table(summary: tuple, models: tuple[str, ...], max_batch: int,
                  i: int) -> np.ndarray:
    """Slowdowns of victim model ``i`` at each batch size against every (model, batch)."""
    by_pair, pooled, by_victim, global_mean = summary
    m = models[i]
    # co-runners never measured with m share one value: computed once, not per co-runner
    # (with 100 models, 94 np.mean calls per victim were most of building its rows)
    unmeasured = float(np.mean(by_victim[m])) if m in by_victim else global_mean
    rows = np.full((max_batch, len(models), max_batch), unmeasured)
    for j, cm in enumerate(models):
        fits = by_pair.get((m, cm))
        if fits:
            rows[:, j, :] = interpolate_pair(fits, pooled[(m, cm)], max_batch)
    return rows


def _pooled_effective(cal: Calibration, pair: tuple[str, str]) -> float:
    """The pooled slowdown of a model pair with its fixed cost at the pair's median
    typical overlap (what unmeasured cells of its grid take)."""
    p = cal.pairs[pair]
    xs = [f.typical_overlap for k, f in cal.keys.items() if (k[0], k[2]) == pair]
    x = float(np.median(xs)) if xs else 0.0
    k = 1.0 - 1.0 / p.slowdown + p.fixed_cost / max(x, MIN_SPREAD)
    return float(1.0 / (1.0 - min(k, 0.98)))



def _share(x: float) -> str:
    """A part of the warning as a percentage; a part above 0 that rounds to 0% reads
    "<1%" (it was printed "0%", beside a headline that counted it)."""
    return "<1%" if 0 < x < 0.005 else f"{x:.0%}"


def extrapolation_warning(block: dict | None,
                          threshold: float = EXTRAPOLATED_WARN_SHARE) -> str | None:
    """One line when at least ``threshold`` of a run's compute batch-seconds overlapped
    co-runners at slowdowns the profile did not measure and identify (None otherwise).
    The parts by origin are overlaps (co-runner-seconds) over the compute time: beside
    one co-runner at a time (2 slots) they add up to the share; where batches ran beside
    two or more at once (``multi_co_rate_changes``) they can add up to more, and the
    line says they count each co-runner."""
    if not block or block.get("extrapolated_share", 0.0) < threshold:
        return None
    overlap = block.get("overlap_s", {})
    parts = [f"{k.replace('_', ' ')} {_share(v / block['compute_s'])}"
             for k, v in overlap.items() if k != "measured" and v > 0]
    by = "counted per co-runner: " if block.get("multi_co_rate_changes", 0) else ""
    return (f"{block['extrapolated_share']:.0%} of the simulated compute time ran beside "
            f"co-runners at slowdowns the profile did not measure and identify "
            f"({by}{', '.join(parts)}); profile those batch sizes and model pairs "
            f"(summary.json: truth)")
