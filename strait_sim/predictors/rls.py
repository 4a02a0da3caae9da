"""``rls``: the fine-grained linear model, refined online by recursive least squares.

RLS with a forgetting factor ``lambda`` (``forgetting``) weighs an observation ``k`` steps
old by ``lambda**k``, so the model follows a workload that changes (memory of about
``1 / (1 - lambda)`` observations); ``lambda = 1`` is ordinary growing-window least
squares. ``initial_covariance`` (``delta``) is the prior covariance ``P0 = delta * I`` of the
coefficients before any data: large means "trust the data quickly".

Initialisation from the training split is exactly RLS run over it without forgetting:
``w = (X'X + I/delta)^-1 X'y`` and ``P = (X'X + I/delta)^-1``. Each observation then does
the textbook update ``k = P x / (lambda + x'P x)``, ``w += k * err``,
``P = (P - k x'P) / lambda``. P is re-symmetrised and its trace capped so that a long run
without excitation (forgetting with uninformative data) cannot blow it up.
"""

from __future__ import annotations

import numpy as np

from strait_sim.predictors.base import Observation
from strait_sim.predictors.linear import LinearPredictor
from strait_sim.predictors.params import check_range

MAX_TRACE = 1e6


class RlsPredictor(LinearPredictor):
    """Fine-grained linear model with an RLS update (forgetting factor) per observation."""

    name = "rls"
    online = True

    def __init__(self, forgetting: float = 0.98, initial_covariance: float = 100.0,
                 ridge: float = 0.0) -> None:
        super().__init__(ridge=ridge)
        self.forgetting = check_range(self.name, "forgetting", forgetting, low=0.0,
                                      high=1.0, low_open=True)
        self.initial_covariance = check_range(self.name, "initial_covariance",
                                              initial_covariance, low=0.0, low_open=True)
        self.P: np.ndarray = np.zeros((0, 0))
        self.updates = 0

    def _fit_arrays(self, x: np.ndarray, y: np.ndarray) -> None:
        d = x.shape[1]
        info = x.T @ x + np.eye(d) / self.initial_covariance
        if self.ridge > 0:
            info += self.ridge * np.diag(np.diag(x.T @ x))
        self.P = np.linalg.inv(info)
        self.P = (self.P + self.P.T) / 2
        self.w = [float(v) for v in self.P @ (x.T @ y)]

    def reset(self, d: int) -> None:
        """Forget everything: w = 0, P = delta * I (pure online learning from scratch)."""
        self.w = [0.0] * d
        self.P = np.eye(d) * self.initial_covariance

    def update(self, observation: Observation) -> None:
        xy = self.observation_xy(observation)
        if xy is None:
            return
        x, y = xy
        self.update_xy(x, y)

    def update_xy(self, x: np.ndarray, y: float) -> None:
        """One RLS step on a raw (features, target) pair."""
        w = np.asarray(self.w)
        px = self.P @ x
        gain = px / (self.forgetting + float(x @ px))
        w = w + gain * (y - float(w @ x))
        P = (self.P - np.outer(gain, px)) / self.forgetting
        P = (P + P.T) / 2
        tr = float(np.trace(P))
        if tr > MAX_TRACE:
            P *= MAX_TRACE / tr
        self.P = P
        self.w = w.tolist()
        self.updates += 1
