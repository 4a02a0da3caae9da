"""Compute truth: solo times sampled from measurements, co-location slowdowns from pairs.

Solo time of (model, batch) is drawn from the measured samples. For batch sizes between
measured ones the quantile functions of the two neighbours are interpolated linearly in
the batch size; beyond the largest (or below the smallest) measured batch the nearest
quantile function is scaled by the ratio of interpolated/extrapolated medians.

Co-location follows a fluid model: while a batch shares the GPU with co-runners it
progresses at 1/s of its solo rate. For one co-runner, s is estimated from pairs.csv per
(model, batch, co_model, co_batch): with solo median S, latency L and overlap O of a
sample, the fluid model says L - S = O (1 - 1/s); k = 1 - 1/s is fitted by least squares
over the samples, so partial overlaps (non-zero start offsets) count for what they are.

Extrapolations (documented in docs/architecture.md):
- (batch, co_batch) not measured for a measured model pair: the nearest measured key in
  (log2 batch, log2 co_batch);
- a model pair never measured: the mean slowdown of that model as victim over its measured
  co-runners, else the mean over all pairs, else 1 (no pairs at all);
- more co-runners than measured (slots > 2): excess slowdowns add,
  s = 1 + sum_i (s_i - 1). Additive excess is the simplest form that reduces to the
  measured pairwise value for one co-runner and grows with each extra co-runner.
"""

from __future__ import annotations

import numpy as np

from strait_sim.profile_bundle import ProfileBundle, interp_extrap

QUANTILES = 64
MAX_SLOWDOWN = 20.0


class ComputeTruth:
    """Samples solo compute times and looks up slowdowns, by model index."""

    def __init__(self, profile: ProfileBundle, models: tuple[str, ...], max_batch: int,
                 rng: np.random.Generator, *, interference: bool = True) -> None:
        self.models = models
        self.max_batch = max_batch
        self.rng = rng
        self.interference = interference
        self._solo_q = np.stack([self._solo_quantiles(profile, m, max_batch) for m in models])
        self._slow = self._slowdown_table(profile, models, max_batch) if interference \
            else np.ones((len(models), max_batch, len(models), max_batch))
        # Nested lists for the per-event lookups: indexing a list is several times
        # cheaper than indexing an array and gives the same doubles.
        self._solo_l: list = self._solo_q.tolist()
        # The slowdown table is n x max_batch x n x max_batch: converted row by row on
        # first use, so a large --max-batch does not pay for rows it never touches.
        self._slow_l: list[list[list | None]] = [[None] * max_batch for _ in models]
        self._draws: list[int] = []
        self._next = 0

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

    def median_ms(self, model_idx: int, batch: int) -> float:
        return float(np.median(self._solo_q[model_idx, batch - 1]))

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
            table = self._slow_l[model_idx][batch - 1] = self._slow[model_idx, batch - 1].tolist()
        excess = 0.0
        for cm, cb in co:
            excess += table[cm][cb - 1] - 1.0
        return 1.0 + excess

    def pair_slowdown(self, model_idx: int, batch: int, co_idx: int, co_batch: int) -> float:
        return float(self._slow[model_idx, batch - 1, co_idx, co_batch - 1])

    @staticmethod
    def fit_pair_slowdowns(profile: ProfileBundle) -> dict[tuple[str, int, str, int], float]:
        """Least-squares fluid slowdown per measured (model, batch, co_model, co_batch)."""
        pairs = profile.pairs
        if pairs is None or len(pairs) == 0:
            return {}
        solo = np.array([profile.solo_ms(m, b) for m, b in
                         zip(pairs["model"], pairs["batch"], strict=True)])
        df = pairs.assign(excess=pairs["latency_ms"].to_numpy() - solo)
        df = df[df["overlap_ms"] > 0]
        out = {}
        for key, g in df.groupby(["model", "batch", "co_model", "co_batch"]):
            o = g["overlap_ms"].to_numpy()
            k = float(np.dot(o, g["excess"].to_numpy()) / np.dot(o, o))
            k = min(max(k, 0.0), 1.0 - 1.0 / MAX_SLOWDOWN)
            out[(str(key[0]), int(key[1]), str(key[2]), int(key[3]))] = 1.0 / (1.0 - k)
        return out

    @classmethod
    def _slowdown_table(cls, profile: ProfileBundle, models: tuple[str, ...],
                        max_batch: int) -> np.ndarray:
        fitted = cls.fit_pair_slowdowns(profile)
        n = len(models)
        table = np.ones((n, max_batch, n, max_batch))
        if not fitted:
            return table
        global_mean = float(np.mean(list(fitted.values())))
        by_pair: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        by_victim: dict[str, list[float]] = {}
        for (m, b, cm, cb), s in fitted.items():
            by_pair.setdefault((m, cm), []).append((np.log2(b), np.log2(cb), s))
            by_victim.setdefault(m, []).append(s)
        logs = np.log2(np.arange(1, max_batch + 1))
        for i, m in enumerate(models):
            for j, cm in enumerate(models):
                keys = by_pair.get((m, cm))
                if not keys:
                    fallback = float(np.mean(by_victim[m])) if m in by_victim else global_mean
                    table[i, :, j, :] = fallback
                    continue
                arr = np.array(keys)
                # nearest measured key in (log2 batch, log2 co_batch), ties to the first
                d = (logs[:, None, None] - arr[None, None, :, 0]) ** 2 + \
                    (logs[None, :, None] - arr[None, None, :, 1]) ** 2
                table[i, :, j, :] = arr[np.argmin(d, axis=2), 2]
        return table


def solo_median_table(profile: ProfileBundle, models: tuple[str, ...], max_batch: int
                      ) -> np.ndarray:
    """(models, max_batch) median solo times in ms (for reports, not for sampling)."""
    out = np.empty((len(models), max_batch))
    for i, m in enumerate(models):
        xs, ys = profile._solo_medians[m]
        for b in range(1, max_batch + 1):
            out[i, b - 1] = interp_extrap(float(b), xs, ys)
    return out
