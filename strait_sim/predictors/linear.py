"""``linear``: the fine-grained linear interference model, fitted once (static).

The form follows the fluid model of co-location: while a batch overlaps a co-runner it
progresses slower, so its excess over the solo latency grows with *how long* they overlap
and with *how intense* the co-runner is. With ``f_j = overlap_ms_j / solo_ms`` (the overlap
fraction with co-runner j) and ``phi_j`` the pair's feature vector
(:class:`strait_sim.predictors.features.PairFeatures`: a constant, the co-runner's
aggressor intensity, the target's victim intensity, and utilization when measured):

    slowdown = latency / solo = 1 + sum_j f_j * (w . phi_j)          (floored at 1)

Several co-runners add their excess slowdowns (the sum over j): in the fluid model each
one's share of the stretch is proportional to its own overlap. A co-runner with
``overlap_ms <= 0`` contributes nothing; no co-runners gives the solo latency.

``w`` is fitted by ridge least squares on the training rows (target ``slowdown - 1``,
features ``f * phi``). This module also holds the shared machinery of the online
learners (``sgd``, ``rls``), which start from this fit and change ``w`` on ``update``.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import mul
from typing import TYPE_CHECKING

import numpy as np

from strait_sim.errors import UserError
from strait_sim.predictors.base import CoRunner, InterferencePredictor, Observation
from strait_sim.predictors.features import PairFeatures, ridge_solve
from strait_sim.predictors.params import check_range
from strait_sim.predictors.samples import SoloTable

if TYPE_CHECKING:
    import pandas as pd

    from strait_sim.profile_bundle import ProfileBundle


class LinearPredictor(InterferencePredictor):
    """Static fine-grained linear model: overlap fraction x pair features."""

    name = "linear"
    online = False

    def __init__(self, ridge: float = 1e-6, *, label: str = "") -> None:
        self.label = label or self.name
        self.ridge = check_range(self.label, "ridge", ridge, low=0.0)
        self.w: list[float] = []
        self.solo: SoloTable | None = None
        self.features: PairFeatures | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.features.names if self.features else ()

    def design(self, samples: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Regression features ``f * phi`` and targets ``slowdown - 1`` of sample rows."""
        assert self.features is not None
        phi = self.features.matrix(samples)
        frac = samples["overlap_fraction"].to_numpy(dtype=float)
        return phi * frac[:, None], samples["slowdown"].to_numpy(dtype=float) - 1.0

    def fit(self, samples: pd.DataFrame, profile: ProfileBundle) -> LinearPredictor:
        self.solo = SoloTable(profile)
        self.features = PairFeatures(samples)
        d = len(self.features.names)
        if len(samples) < d + 1:
            raise UserError(f"predictor '{self.label}': {len(samples)} training samples are "
                            f"too few to fit {d} coefficients")
        x, y = self.design(samples)
        self._fit_arrays(x, y)
        return self

    def _fit_arrays(self, x: np.ndarray, y: np.ndarray) -> None:
        self.w = [float(v) for v in ridge_solve(x, y, self.ridge)]

    # -- hot path ------------------------------------------------------------------------
    def regressors(self, model: str, batch: int, solo: float,
                   co_runners: Sequence[CoRunner]) -> list[float] | None:
        """``sum_j f_j * phi_j`` as a list, or None when no co-runner overlaps."""
        assert self.features is not None
        x: list[float] | None = None
        for co in co_runners:
            if co.overlap_ms <= 0.0:
                continue
            f = co.overlap_ms / solo
            phi = self.features(model, batch, co.model, co.batch)
            if x is None:
                x = [f * p for p in phi]
            else:
                for i, p in enumerate(phi):
                    x[i] += f * p
        return x

    def pair_rate(self, model: str, batch: int, co_model: str, co_batch: int) -> float:
        """Latency added per ms of overlap with (co_model, co_batch): ``w . phi``, the fluid
        model's ``k = 1 - 1/s`` (not clamped)."""
        assert self.features is not None, "fit() first"
        return sum(map(mul, self.w, self.features(model, batch, co_model, co_batch)))

    def predict(self, model: str, batch: int, co_runners: Sequence[CoRunner] = ()) -> float:
        assert self.solo is not None, "fit() first"
        solo = self.solo(model, batch)
        if not co_runners:
            return solo
        x = self.regressors(model, batch, solo, co_runners)
        if x is None:
            return solo
        excess = sum(w * v for w, v in zip(self.w, x, strict=True))
        return solo * (1.0 + excess) if excess > 0.0 else solo

    # -- online learners reuse this ------------------------------------------------------
    def observation_xy(self, obs: Observation) -> tuple[list[float], float] | None:
        """(features, target) of one observation, or None when it teaches nothing."""
        assert self.solo is not None, "fit() first"
        solo = self.solo(obs.model, obs.batch)
        x = self.regressors(obs.model, obs.batch, solo, obs.co_runners)
        if x is None:
            return None
        return x, obs.latency_ms / solo - 1.0
