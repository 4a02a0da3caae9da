"""``gpulet``: GPUlet's static, coarse-grained linear slowdown model.

GPUlet (Choi et al., ATC'22) predicts the slowdown of a model beside one co-runner as
``s = c0*L2_self + c1*L2_other + c2*DRAM_self + c3*DRAM_other + c4`` (floored at 1), from
solo utilization counters, fitted once by least squares, and applies the largest ``s``
over the co-runners to the *whole* solo latency, as if the two ran side by side from
start to end. That last assumption is what the paper of arXiv 2512.18725 criticises: when
co-runners overlap only partly, the coarse model over-predicts.

Here:
- with ``utilization.csv`` the features are exactly GPUlet's (L2 and DRAM fractions);
- without it (CPU bundles, GPU bundles profiled without counters) the same form is used
  over the learned intensities of :mod:`strait_sim.predictors.features`: the target's
  *victim* score takes the "self" slot and the co-runner's *aggressor* score the "other"
  slot (``s = c0*victim_self + c1*aggressor_other + c2``);
- it is fitted on the training rows where both batches started together
  (``started_together``, see :mod:`strait_sim.predictors.samples`: GPUlet's calibration
  runs) when there are enough of them (at least 10 and three per coefficient), otherwise
  on all training rows;
- co-runners with no expected overlap (``overlap_ms <= 0``) are ignored; the overlap
  length is otherwise not used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from strait_sim.errors import UserError
from strait_sim.predictors.base import CoRunner, InterferencePredictor
from strait_sim.predictors.features import Intensities, UtilTable, ridge_solve
from strait_sim.predictors.params import check_range
from strait_sim.predictors.samples import SoloTable

if TYPE_CHECKING:
    import pandas as pd

    from strait_sim.profile_bundle import ProfileBundle


class GpuletPredictor(InterferencePredictor):
    """Static linear slowdown over solo-level features, applied to the whole latency."""

    name = "gpulet"
    online = False

    def __init__(self, ridge: float = 1e-6, *, label: str = "") -> None:
        self.label = label or self.name
        self.ridge = check_range(self.label, "ridge", ridge, low=0.0)
        self.coef: list[float] = []
        self.feature_names: tuple[str, ...] = ()
        self.fit_rows = 0
        self.solo: SoloTable | None = None
        self._intensities: Intensities | None = None
        self._util: UtilTable | None = None
        self._memo: dict[tuple[str, int, str, int], float] = {}

    # -- features ------------------------------------------------------------------------
    def _psi(self, model: str, batch: int, co_model: str, co_batch: int) -> tuple[float, ...]:
        if self._util:
            own = self._util.get(model, batch)
            other = self._util.get(co_model, co_batch)
            return (own[1], other[1], own[2], other[2], 1.0)  # sm, l2, dram order in table
        assert self._intensities is not None
        return (self._intensities.victim(model, batch),
                self._intensities.aggressor(co_model, co_batch), 1.0)

    def fit(self, samples: pd.DataFrame, profile: ProfileBundle) -> GpuletPredictor:
        self.solo = SoloTable(profile)
        self._intensities = Intensities(samples)
        self._util = UtilTable(samples)
        self.feature_names = (("l2_self", "l2_other", "dram_self", "dram_other", "const")
                              if self._util else ("victim_self", "aggressor_other", "const"))
        d = len(self.feature_names)
        rows = samples[samples["started_together"]] if "started_together" in samples \
            else samples[samples["offset_ms"] == 0]
        if len(rows) < max(10, 3 * d):
            rows = samples
        if len(rows) < d + 1:
            raise UserError(f"predictor '{self.label}': {len(rows)} training samples are too "
                            f"few to fit {d} coefficients")
        x = np.array([self._psi(m, int(b), c, int(cb)) for m, b, c, cb in zip(
            rows["model"], rows["batch"], rows["co_model"], rows["co_batch"], strict=True)])
        y = rows["slowdown"].to_numpy(dtype=float)
        self.coef = [float(v) for v in ridge_solve(x, y, self.ridge)]
        self.fit_rows = len(rows)
        self._memo.clear()
        return self

    def pair_slowdown(self, model: str, batch: int, co_model: str, co_batch: int) -> float:
        """GPUlet's slowdown of (model, batch) beside (co_model, co_batch), floored at 1."""
        key = (model, batch, co_model, co_batch)
        hit = self._memo.get(key)
        if hit is None:
            psi = self._psi(model, batch, co_model, co_batch)
            hit = max(1.0, sum(c * f for c, f in zip(self.coef, psi, strict=True)))
            self._memo[key] = hit
        return hit

    def slowdown(self, model: str, batch: int, co_runners: Sequence[CoRunner]) -> float:
        worst = 1.0
        for co in co_runners:
            if co.overlap_ms > 0.0:
                s = self.pair_slowdown(model, batch, co.model, co.batch)
                if s > worst:
                    worst = s
        return worst

    def predict(self, model: str, batch: int, co_runners: Sequence[CoRunner] = ()) -> float:
        assert self.solo is not None, "fit() first"
        solo = self.solo(model, batch)
        if not co_runners:
            return solo
        return solo * self.slowdown(model, batch, co_runners)
