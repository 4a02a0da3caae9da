"""``pairs``: a fluid rate per measured pair of batches, refined online per pair.

Why: on the bundled CPU profile the measured slowdowns are strongly pairwise. A batch of
vgg16 beside a small mobilenet_v2 batch is slowed many times more than beside bert_base,
and the additive aggressor/victim features of ``linear``/``rls`` (one number per batch)
explain little of it (their pair rates correlate about 0.35 with per-pair fits). A
profiled pair is its own best description.

Model: while a batch overlaps co-runner ``j`` for ``O_j`` ms of wall-clock time its
latency grows by ``k_j O_j`` (the fluid model's ``k = 1 - 1/s``), so

    latency = solo + sum_j k_j * O_j        (k_j in [0, 0.95])

- **Offline**: ``k`` of a measured key (model, batch, co_model, co_batch) is the least-
  squares fit ``sum O (L - S) / sum O^2`` over the training rows of that key (both views of
  each run; ``S`` the bundle's median solo latency). The training rows are the predictors'
  split of pairs.csv (odd repetitions; :mod:`strait_sim.sample_split`), disjoint from the
  samples the simulator's truth model is fitted on.
- **Unmeasured keys**: the nearest measured key of the same model pair in
  ``(log2 batch, log2 co_batch)``; a model pair never measured falls back to the
  ``linear`` model's rate (aggressor/victim features), fitted on the same rows.
- **Online**: each observation's residual ``r = (L - S) - sum_j k_j O_j`` is spread over
  its co-runners by a regularised normalised LMS step,
  ``k_j += step * r * O_j / (sum_i O_i^2 + (damping * S)^2)``: a forgetting memory of
  about ``1 / step`` observations per pair for batches that overlapped their co-runners
  for about their solo time or more (``step = 1``, ``damping = 0`` trusts the last
  observation entirely).

  Why the ``(damping * S)^2`` term: without it one co-runner gives ``dk = step * r / O``,
  so the less a batch overlapped, the more its residual moved the rate. A residual is
  mostly the batch's own solo noise (a few % of ``S``), so a batch that overlapped its
  co-runner by microseconds, which says almost nothing about ``k``, threw the pair's rate
  to its clamp (0.95: a 20x slowdown predicted for every later batch of the pair until
  about ten full overlaps pulled it back). With the term an observation moves ``k`` by at
  most ``step * |r| / (2 * damping * S)``, whatever the overlap. ``damping = 0.25`` is a
  Kalman gain's regulariser, (noise / uncertainty of k)^2: a residual's noise is about 5%
  of ``S`` (the solo runs' noise floor, docs/predictors.md) and a pair's ``k`` is known to
  about 0.2, so (0.05 / 0.2)^2 S^2 = (0.25 S)^2; a batch that overlapped for its solo time
  or more then steps within 6% of the unregularised step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from strait_sim.predictors.base import CoRunner, InterferencePredictor, Observation
from strait_sim.predictors.linear import LinearPredictor
from strait_sim.predictors.params import check_range

if TYPE_CHECKING:
    import pandas as pd

    from strait_sim.profile_bundle import ProfileBundle

MAX_RATE = 0.95
Key = tuple[str, int, str, int]


class PairPredictor(InterferencePredictor):
    """Per-pair fluid rates from the profile, corrected online by normalised LMS."""

    name = "pairs"
    online = True

    def __init__(self, step: float = 0.1, ridge: float = 1e-6, damping: float = 0.25) -> None:
        self.step = check_range(self.name, "step", step, low=0.0, high=1.0, low_open=True)
        self.damping = check_range(self.name, "damping", damping, low=0.0, high=100.0)
        self.linear = LinearPredictor(ridge=ridge, label=self.name)
        self.k: dict[Key, float] = {}
        self.measured: dict[Key, float] = {}
        self._by_pair: dict[tuple[str, str], list[tuple[float, float, Key]]] = {}
        self.updates = 0

    @property
    def solo(self):  # noqa: ANN201 - the SoloTable of the fit
        return self.linear.solo

    def fit(self, samples: pd.DataFrame, profile: ProfileBundle) -> PairPredictor:
        self.linear.fit(samples, profile)
        rows = samples[samples["overlap_ms"] > 0]
        o = rows["overlap_ms"].to_numpy(dtype=float)
        ex = (rows["latency_ms"] - rows["solo_ms"]).to_numpy(dtype=float)
        keys = list(zip(rows["model"].astype(str), rows["batch"].astype(int),
                        rows["co_model"].astype(str), rows["co_batch"].astype(int),
                        strict=True))
        num: dict[Key, float] = {}
        den: dict[Key, float] = {}
        for key, oi, ei in zip(keys, o, ex, strict=True):
            num[key] = num.get(key, 0.0) + oi * ei
            den[key] = den.get(key, 0.0) + oi * oi
        self.measured = {k: _clamp(num[k] / den[k]) for k in sorted(num) if den[k] > 0}
        self.k = dict(self.measured)
        self._by_pair = {}
        for key in self.measured:
            m, b, cm, cb = key
            self._by_pair.setdefault((m, cm), []).append((np.log2(b), np.log2(cb), key))
        return self

    def pair_rate(self, model: str, batch: int, co_model: str, co_batch: int) -> float:
        """Fluid rate ``k`` of (model, batch) beside (co_model, co_batch)."""
        key = (model, batch, co_model, co_batch)
        k = self.k.get(key)
        if k is None:
            k = self.k[key] = self._fallback(key)
        return k

    def _fallback(self, key: Key) -> float:
        m, b, cm, cb = key
        near = self._by_pair.get((m, cm))
        if near:
            lb, lcb = np.log2(b), np.log2(cb)
            best = min(near, key=lambda x: ((x[0] - lb) ** 2 + (x[1] - lcb) ** 2, x[2]))
            return self.measured[best[2]]
        return _clamp(self.linear.pair_rate(m, b, cm, cb))

    def predict(self, model: str, batch: int, co_runners: Sequence[CoRunner] = ()) -> float:
        assert self.solo is not None, "fit() first"
        solo = self.solo(model, batch)
        extra = 0.0
        for c in co_runners:
            if c.overlap_ms > 0.0:
                extra += self.pair_rate(model, batch, c.model, c.batch) * c.overlap_ms
        return solo + extra

    def update(self, observation: Observation) -> None:
        self.learn(observation.model, observation.batch,
                   [(c.model, c.batch, c.overlap_ms) for c in observation.co_runners],
                   observation.latency_ms)

    def learn(self, m: str, b: int, co_runs: Sequence[tuple[str, int, float]],
              latency_ms: float) -> None:
        """The update on plain (co_model, co_batch, overlap_ms) tuples (the hot path)."""
        assert self.solo is not None, "fit() first"
        solo = self.solo(m, b)
        resid = latency_ms - solo
        floor = self.damping * solo
        norm = floor * floor  # see the module's docstring: no overlap too small to count
        k = self.k
        seen = []
        for cm, cb, o in co_runs:
            if o > 0.0:
                key = (m, b, cm, cb)
                kj = k.get(key)
                if kj is None:
                    kj = self.pair_rate(*key)
                resid -= kj * o
                norm += o * o
                seen.append((key, o))
        if not seen:
            return
        gain = self.step * resid / norm
        for key, o in seen:
            v = k[key] + gain * o
            k[key] = 0.0 if v < 0.0 else (MAX_RATE if v > MAX_RATE else v)
        self.updates += 1


def _clamp(k: float) -> float:
    return 0.0 if k < 0.0 else (MAX_RATE if k > MAX_RATE else float(k))
