"""``sgd``: the fine-grained linear model, refined online by stochastic gradient descent.

Starts from the least-squares fit of :mod:`strait_sim.predictors.linear` on the training
split; after every observation takes one normalised gradient step (NLMS)
``w += lr * err * x / (eps + |x|^2)`` with ``err = (slowdown - 1) - w.x``. Normalising by
``|x|^2`` makes ``lr`` a fraction of the error corrected per step (0 < lr < 2 is stable
whatever the scale of the features), so one default fits every bundle.
"""

from __future__ import annotations

from strait_sim.predictors.base import Observation
from strait_sim.predictors.linear import LinearPredictor
from strait_sim.predictors.params import check_range


class SgdPredictor(LinearPredictor):
    """Fine-grained linear model with a normalised SGD step per observation."""

    name = "sgd"
    online = True

    def __init__(self, learning_rate: float = 0.1, ridge: float = 1e-4) -> None:
        super().__init__(ridge=ridge)
        self.learning_rate = check_range(self.name, "learning_rate", learning_rate,
                                         low=0.0, high=2.0, low_open=True, high_open=True)
        self.updates = 0

    def update(self, observation: Observation) -> None:
        xy = self.observation_xy(observation)
        if xy is None:
            return
        x, y = xy
        w = self.w
        err = y - sum(a * b for a, b in zip(w, x, strict=True))
        step = self.learning_rate * err / (1e-9 + float(x @ x))
        self.w = [a + step * b for a, b in zip(w, x, strict=True)]
        self.updates += 1
