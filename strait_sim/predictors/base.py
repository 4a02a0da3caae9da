"""The predictor contract: what a policy believes a batch's compute time will be.

scikit-learn-like: construct with validated parameters, ``fit`` on samples from a profile
bundle, ``predict`` for a candidate batch and its co-runners, ``update`` with each observed
completion (online learners change; static ones ignore it). Predictors read measurements
(the bundle), never the simulator's truth model.

``predict`` is called in the scheduler's hot path: keep it to table look-ups and a few
floating-point operations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import pandas as pd

    from strait_sim.profile_bundle import ProfileBundle


@dataclass(frozen=True, slots=True)
class CoRunner:
    """A batch that runs (or is expected to run) beside the target's compute phase.

    ``overlap_ms``: how long the two compute phases overlap (expected when predicting,
    observed when updating).
    """

    model: str
    batch: int
    overlap_ms: float


@dataclass(frozen=True, slots=True)
class Observation:
    """One completed compute phase: what was run, beside whom, and how long it took."""

    model: str
    batch: int
    co_runners: tuple[CoRunner, ...]
    latency_ms: float


class InterferencePredictor(ABC):
    """Predicts the compute time (ms) of (model, batch) given its co-runners."""

    name: ClassVar[str] = ""
    online: ClassVar[bool] = False
    #: which co-location samples the fit used (set by ``registry.make_predictor``):
    #: "out-of-sample" (disjoint from the truth model's), "in-sample" or "none"
    samples_used: str = "unknown"
    #: the predictor the user asked for, named in error messages. A predictor built inside
    #: another (ewma's gpulet, pairs' linear) takes the outer one's name, so that
    #: ``--param ridge=nan`` on ewma does not blame a gpulet the user never mentioned.
    label: str = ""

    @abstractmethod
    def fit(self, samples: pd.DataFrame, profile: ProfileBundle) -> InterferencePredictor:
        """Fit on co-location samples (see ``strait_sim.predictors.samples``); return self."""

    @abstractmethod
    def predict(self, model: str, batch: int, co_runners: Sequence[CoRunner] = ()) -> float:
        """Predicted compute time in ms."""

    def update(self, observation: Observation) -> None:  # noqa: B027 (optional hook)
        """Learn from one observation (no-op for static predictors)."""
