"""``sgd``: the fine-grained linear model, refined online by stochastic gradient descent.

Starts from the least-squares fit of :mod:`strait_sim.predictors.linear` on the training
split; after every observation takes one normalised gradient step (NLMS) in *scaled*
feature space: with ``z_j = x_j / scale_j`` (``scale_j`` = root mean square of feature j
on the training split), ``w_j += lr * err * z_j / scale_j / (eps + |z|^2)`` and
``err = (slowdown - 1) - w.x``. Normalising by ``|z|^2`` makes ``lr`` the fraction of the
error corrected per step (``0 < lr < 2`` is stable whatever the bundle); scaling keeps a
feature with small values (an intensity of a few hundredths) from learning a hundred
times slower than the constant.

The default ``lr = 0.02`` gives SGD about the memory of ``rls``'s default forgetting
factor (``1 / (1 - 0.98) = 50`` observations): each step corrects 2% of the error, so
one noisy observation moves the model little. Larger rates follow a change faster and
wander more on noisy measurements.
"""

from __future__ import annotations

import numpy as np

from strait_sim.predictors.base import Observation
from strait_sim.predictors.linear import LinearPredictor
from strait_sim.predictors.params import check_range


class SgdPredictor(LinearPredictor):
    """Fine-grained linear model with a normalised SGD step per observation."""

    name = "sgd"
    online = True

    def __init__(self, learning_rate: float = 0.02, ridge: float = 1e-6) -> None:
        super().__init__(ridge=ridge)
        self.learning_rate = check_range(self.name, "learning_rate", learning_rate,
                                         low=0.0, high=2.0, low_open=True, high_open=True)
        self.scale: list[float] = []
        self.updates = 0

    def _fit_arrays(self, x: np.ndarray, y: np.ndarray) -> None:
        super()._fit_arrays(x, y)
        rms = np.sqrt(np.mean(x * x, axis=0))
        self.scale = [float(v) if v > 0 else 1.0 for v in rms]

    def update(self, observation: Observation) -> None:
        xy = self.observation_xy(observation)
        if xy is None:
            return
        x, y = xy
        w, scale = self.w, self.scale
        z = [xi / si for xi, si in zip(x, scale, strict=True)]
        err = y - sum(a * b for a, b in zip(w, x, strict=True))
        step = self.learning_rate * err / (1e-12 + sum(v * v for v in z))
        self.w = [wi + step * zi / si for wi, zi, si in zip(w, z, scale, strict=True)]
        self.updates += 1
