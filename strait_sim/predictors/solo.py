"""``solo``: no interference at all; the prediction is the measured solo latency.

The floor every other predictor must beat, and what an interference-blind scheduler
(FIFO, EDF, strict priority) effectively believes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from strait_sim.predictors.base import CoRunner, InterferencePredictor
from strait_sim.predictors.samples import SoloTable

if TYPE_CHECKING:
    import pandas as pd

    from strait_sim.profile_bundle import ProfileBundle


class SoloPredictor(InterferencePredictor):
    """Predicts the median solo latency of (model, batch), whoever runs beside it."""

    name = "solo"
    online = False

    def __init__(self) -> None:
        self.solo: SoloTable | None = None

    def fit(self, samples: pd.DataFrame | None, profile: ProfileBundle) -> SoloPredictor:
        self.solo = SoloTable(profile)
        return self

    def predict(self, model: str, batch: int, co_runners: Sequence[CoRunner] = ()) -> float:
        assert self.solo is not None, "fit() first"
        return self.solo(model, batch)
