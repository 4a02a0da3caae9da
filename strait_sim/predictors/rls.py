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
        self._P: list[list[float]] = []
        self.updates = 0

    # P is kept as a list of lists: with three to eight coefficients, plain float
    # arithmetic is several times faster per update than numpy's per-call overhead.
    @property
    def P(self) -> np.ndarray:  # noqa: N802 - the textbook name
        """The coefficients' covariance (a copy, as a numpy array)."""
        return np.array(self._P, dtype=float).reshape(len(self._P), len(self._P))

    @P.setter
    def P(self, value) -> None:  # noqa: N802, ANN001
        self._P = [[float(v) for v in row] for row in np.asarray(value, dtype=float)]

    def _fit_arrays(self, x: np.ndarray, y: np.ndarray) -> None:
        d = x.shape[1]
        info = x.T @ x + np.eye(d) / self.initial_covariance
        if self.ridge > 0:
            info += self.ridge * np.diag(np.diag(x.T @ x))
        P = np.linalg.inv(info)
        P = (P + P.T) / 2
        self.P = P
        self.w = [float(v) for v in P @ (x.T @ y)]

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

    def update_xy(self, x, y: float) -> None:  # noqa: ANN001 - a sequence of floats
        """One RLS step on a raw (features, target) pair."""
        x = [float(v) for v in x]
        P, w, lam = self._P, self.w, self.forgetting
        px = [sum(a * b for a, b in zip(row, x, strict=True)) for row in P]
        denom = lam + sum(a * b for a, b in zip(x, px, strict=True))
        gain = [v / denom for v in px]
        err = y - sum(a * b for a, b in zip(w, x, strict=True))
        self.w = [wi + gi * err for wi, gi in zip(w, gain, strict=True)]
        new = [[(pij - gi * pxj) / lam for pij, pxj in zip(row, px, strict=True)]
               for row, gi in zip(P, gain, strict=True)]
        d = len(x)
        for i in range(d):
            for j in range(i + 1, d):
                new[i][j] = new[j][i] = (new[i][j] + new[j][i]) / 2
        tr = sum(new[i][i] for i in range(d))
        if tr > MAX_TRACE:
            scale = MAX_TRACE / tr
            new = [[v * scale for v in row] for row in new]
        self._P = new
        self.updates += 1
