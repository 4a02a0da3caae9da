"""``gbt``: gradient-boosted trees (scikit-learn), a non-linear reference.

How much does a linear form leave on the table? This model sees the same information as
the fine-grained linear one (overlap fraction, aggressor and victim intensities,
utilization when measured) plus the solo latencies and batch sizes, and may combine them
any way it likes. It keeps the fluid structure (excess proportional to the overlap
fraction) by learning the per-overlap excess rate ``r = (slowdown - 1) / f`` with sample
weights ``f^2``, which is least squares on the slowdown itself:

    slowdown = 1 + sum_j f_j * r(f_j, features_j)                   (floored at 1)

Static (``update`` is a no-op), deterministic (``seed``), and slower to predict than the
linear models (a tree ensemble per call, memoised on the overlap fraction rounded to
1/100): a reference for the evaluation, not meant for a scheduler's hot path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from strait_sim.errors import UserError
from strait_sim.predictors.base import CoRunner, InterferencePredictor
from strait_sim.predictors.features import PairFeatures
from strait_sim.predictors.params import check_int, check_range, check_seed
from strait_sim.predictors.samples import SoloTable

if TYPE_CHECKING:
    import pandas as pd

    from strait_sim.profile_bundle import ProfileBundle

#: scikit-learn allocates per-tree arrays up front (1e9 trees is a MemoryError before any
#: fitting) and fits the trees one after another, so the count bounds memory and time
MAX_ESTIMATORS = 10_000
_WHY_ESTIMATORS = "trees are allocated up front and fitted one by one: more would " \
    "exhaust memory or run for hours; the default is 200"
#: a tree this deep already has more leaves (2**32) than any profile has samples
MAX_DEPTH = 32
_WHY_DEPTH = "a deeper tree has more leaves than any profile has samples"


class GbtPredictor(InterferencePredictor):
    """Gradient-boosted trees on the per-overlap excess rate."""

    name = "gbt"
    online = False

    def __init__(self, n_estimators: int = 200, max_depth: int = 3,
                 learning_rate: float = 0.05, seed: int = 0) -> None:
        self.n_estimators = check_int(self.name, "n_estimators", n_estimators, low=1,
                                      high=MAX_ESTIMATORS, why=_WHY_ESTIMATORS)
        self.max_depth = check_int(self.name, "max_depth", max_depth, low=1, high=MAX_DEPTH,
                                   why=_WHY_DEPTH)
        self.learning_rate = check_range(self.name, "learning_rate", learning_rate, low=0.0,
                                         high=1.0, low_open=True)
        self.seed = check_seed(self.name, seed)
        self.model = None
        self.solo: SoloTable | None = None
        self.features: PairFeatures | None = None
        self._memo: dict[tuple[str, int, str, int, int], float] = {}

    def _row(self, model: str, batch: int, co_model: str, co_batch: int, frac: float,
             solo: float) -> list[float]:
        assert self.features is not None and self.solo is not None
        phi = self.features(model, batch, co_model, co_batch)
        co_solo = self.solo(co_model, co_batch)
        return [frac, *phi[1:], math.log(solo), math.log(co_solo), float(batch),
                float(co_batch)]

    def fit(self, samples: pd.DataFrame, profile: ProfileBundle) -> GbtPredictor:
        from sklearn.ensemble import GradientBoostingRegressor

        self.solo = SoloTable(profile)
        self.features = PairFeatures(samples)
        rows = samples[samples["overlap_fraction"] > 0.02]
        if len(rows) < 10:
            raise UserError(f"predictor '{self.name}': {len(rows)} training samples with "
                            "overlap are too few to fit trees (need 10)")
        x = np.array([self._row(str(m), int(b), str(c), int(cb), float(f), float(s))
                      for m, b, c, cb, f, s in zip(
                          rows["model"], rows["batch"], rows["co_model"], rows["co_batch"],
                          rows["overlap_fraction"], rows["solo_ms"], strict=True)])
        frac = rows["overlap_fraction"].to_numpy(dtype=float)
        rate = (rows["slowdown"].to_numpy(dtype=float) - 1.0) / frac
        self.model = GradientBoostingRegressor(
            n_estimators=self.n_estimators, max_depth=self.max_depth,
            learning_rate=self.learning_rate, subsample=0.8, random_state=self.seed)
        self.model.fit(x, rate, sample_weight=frac**2)
        self._memo.clear()
        return self

    def rate(self, model: str, batch: int, co_model: str, co_batch: int, frac: float,
             solo: float) -> float:
        key = (model, batch, co_model, co_batch, round(frac * 100))
        hit = self._memo.get(key)
        if hit is None:
            assert self.model is not None, "fit() first"
            row = self._row(model, batch, co_model, co_batch, key[4] / 100.0, solo)
            hit = float(self.model.predict(np.array([row]))[0])
            self._memo[key] = hit
        return hit

    def predict(self, model: str, batch: int, co_runners: Sequence[CoRunner] = ()) -> float:
        assert self.solo is not None, "fit() first"
        solo = self.solo(model, batch)
        excess = 0.0
        for co in co_runners:
            if co.overlap_ms > 0.0:
                f = co.overlap_ms / solo
                excess += f * self.rate(model, batch, co.model, co.batch, f, solo)
        return solo * (1.0 + excess) if excess > 0.0 else solo
