"""``ewma``: the coarse GPUlet model, corrected per pair by a moving average.

A common fix for a static model is to multiply its prediction by a correction learned
from recent measurements. Here the correction of a pair is the exponentially weighted
moving average of ``observed latency / coarse prediction`` over that pair's observations
(weight ``alpha`` on the newest). A pair is the target model and the sorted tuple of its
overlapping co-runners' models (batch sizes are left out so that the average has enough
observations to settle). It is initialised from the training split (the pair's mean
ratio there); a pair never seen starts from the average ratio over all pairs, which is
itself an EWMA of every observation.

It still applies one factor to the whole latency, so it learns the *average* overlap of a
pair, not the overlap of the batch at hand: this is the coarse-grained, adaptive baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from strait_sim.predictors.base import CoRunner, InterferencePredictor, Observation
from strait_sim.predictors.gpulet import GpuletPredictor
from strait_sim.predictors.params import check_range

if TYPE_CHECKING:
    import pandas as pd

    from strait_sim.profile_bundle import ProfileBundle

PairKey = tuple[str, tuple[str, ...]]


def _key(model: str, co_runners: Sequence[CoRunner]) -> PairKey | None:
    cos = tuple(sorted(c.model for c in co_runners if c.overlap_ms > 0.0))
    return (model, cos) if cos else None


class EwmaPredictor(InterferencePredictor):
    """GPUlet prediction times a per-pair EWMA of observed/predicted ratios."""

    name = "ewma"
    online = True

    def __init__(self, alpha: float = 0.2, ridge: float = 1e-6) -> None:
        self.alpha = check_range(self.name, "alpha", alpha, low=0.0, high=1.0, low_open=True)
        self.coarse = GpuletPredictor(ridge=ridge, label=self.name)
        self.ratio: dict[PairKey, float] = {}
        self.global_ratio = 1.0
        self.updates = 0

    def fit(self, samples: pd.DataFrame, profile: ProfileBundle) -> EwmaPredictor:
        self.coarse.fit(samples, profile)
        coarse = samples.apply(lambda r: self.coarse.pair_slowdown(
            str(r["model"]), int(r["batch"]), str(r["co_model"]), int(r["co_batch"])), axis=1)
        rows = samples.assign(_ratio=samples["slowdown"] / coarse)
        rows = rows[rows["overlap_ms"] > 0]
        self.ratio = {(str(m), (str(c),)): float(v)
                      for (m, c), v in rows.groupby(["model", "co_model"])["_ratio"].mean().items()}
        self.global_ratio = float(rows["_ratio"].mean()) if len(rows) else 1.0
        return self

    def predict(self, model: str, batch: int, co_runners: Sequence[CoRunner] = ()) -> float:
        base = self.coarse.predict(model, batch, co_runners)
        if not co_runners:
            return base
        key = _key(model, co_runners)
        if key is None:
            return base
        return base * self.ratio.get(key, self.global_ratio)

    def update(self, observation: Observation) -> None:
        key = _key(observation.model, observation.co_runners)
        if key is None:
            return
        base = self.coarse.predict(observation.model, observation.batch, observation.co_runners)
        r = observation.latency_ms / base
        a = self.alpha
        self.ratio[key] = (1 - a) * self.ratio.get(key, self.global_ratio) + a * r
        self.global_ratio = (1 - a) * self.global_ratio + a * r
        self.updates += 1
