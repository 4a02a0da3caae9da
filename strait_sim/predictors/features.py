"""Per-model interference features shared by the gpulet, linear, online and GBT predictors.

Why learned intensities: GPUlet describes each model by its solo L2 and DRAM utilization.
A bundle measured on a CPU (and any GPU bundle profiled without counters) has no such
table, so we describe each (model, batch) by two numbers measured from the training
co-locations instead, in the units of the fluid model (excess slowdown per unit of
overlap fraction, ``q = (slowdown - 1) / overlap_fraction``):

- ``aggressor(model, batch)``: how much more than average it slows others down;
- ``victim(model, batch)``: how much more than average it suffers.

They come from a two-way additive fit ``q ~ g + victim[self] + aggressor[co]`` over the
training rows with enough overlap (``overlap_fraction >= MIN_FRACTION``), with ridge
shrinkage towards zero so that a (model, batch) seen a few times stays near the average.
An unseen batch size falls back to the mean effect of its model, an unseen model to 0.
Only training rows are used: these are features, not a peek at the test set. When the
bundle also has ``utilization.csv``, the utilization fractions are used *as well*.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from strait_sim.predictors.samples import UTIL_METRICS, has_util

MIN_FRACTION = 0.2
SHRINKAGE = 3.0
ITERATIONS = 25

Unit = tuple[str, int]


class Intensities:
    """Aggressor and victim scores per (model, batch), learned from training rows."""

    def __init__(self, samples: pd.DataFrame) -> None:
        rows = samples[samples["overlap_fraction"] >= MIN_FRACTION]
        if len(rows) == 0:
            rows = samples[samples["overlap_fraction"] > 0]
        self.global_rate = 0.0
        self._victim: dict[Unit, float] = {}
        self._aggressor: dict[Unit, float] = {}
        self._victim_model: dict[str, float] = {}
        self._aggressor_model: dict[str, float] = {}
        if len(rows) == 0:
            return
        q = ((rows["slowdown"] - 1.0) / rows["overlap_fraction"]).to_numpy(dtype=float)
        selfs = list(zip(rows["model"].astype(str), rows["batch"].astype(int), strict=True))
        cos = list(zip(rows["co_model"].astype(str), rows["co_batch"].astype(int),
                       strict=True))
        self_idx, self_units = _index(selfs)
        co_idx, co_units = _index(cos)
        g = float(np.median(q))
        v = np.zeros(len(self_units))
        a = np.zeros(len(co_units))
        n_self = np.bincount(self_idx, minlength=len(self_units))
        n_co = np.bincount(co_idx, minlength=len(co_units))
        for _ in range(ITERATIONS):
            g = float(np.mean(q - v[self_idx] - a[co_idx]))
            resid = q - g - a[co_idx]
            v = np.bincount(self_idx, weights=resid, minlength=len(v)) / (n_self + SHRINKAGE)
            resid = q - g - v[self_idx]
            a = np.bincount(co_idx, weights=resid, minlength=len(a)) / (n_co + SHRINKAGE)
        self.global_rate = g
        self._victim = {u: float(x) for u, x in zip(self_units, v, strict=True)}
        self._aggressor = {u: float(x) for u, x in zip(co_units, a, strict=True)}
        self._victim_model = _model_means(self._victim)
        self._aggressor_model = _model_means(self._aggressor)

    def victim(self, model: str, batch: int) -> float:
        hit = self._victim.get((model, batch))
        return hit if hit is not None else self._victim_model.get(model, 0.0)

    def aggressor(self, model: str, batch: int) -> float:
        hit = self._aggressor.get((model, batch))
        return hit if hit is not None else self._aggressor_model.get(model, 0.0)


def _index(units: list[Unit]) -> tuple[np.ndarray, list[Unit]]:
    order: dict[Unit, int] = {}
    idx = np.fromiter((order.setdefault(u, len(order)) for u in units), dtype=np.int64,
                      count=len(units))
    return idx, list(order)


def _model_means(effects: dict[Unit, float]) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for (model, _), val in effects.items():
        sums.setdefault(model, []).append(val)
    return {m: float(np.mean(v)) for m, v in sums.items()}


class UtilTable:
    """Utilization fractions per (model, batch) copied out of the training samples."""

    def __init__(self, samples: pd.DataFrame) -> None:
        self._table: dict[Unit, tuple[float, ...]] = {}
        if not has_util(samples):
            return
        own = [f"util_{m}" for m in UTIL_METRICS]
        co = [f"co_util_{m}" for m in UTIL_METRICS]
        for cols, mcol, bcol in ((own, "model", "batch"), (co, "co_model", "co_batch")):
            sub = samples[[mcol, bcol, *cols]].drop_duplicates([mcol, bcol])
            for row in sub.itertuples(index=False):
                self._table[(str(row[0]), int(row[1]))] = tuple(float(x) for x in row[2:])

    def __bool__(self) -> bool:
        return bool(self._table)

    def get(self, model: str, batch: int) -> tuple[float, ...]:
        hit = self._table.get((model, batch))
        if hit is not None:
            return hit
        same = [(abs(np.log(b) - np.log(max(batch, 1))), b) for (m, b) in self._table
                if m == model]
        if not same:
            return (0.0,) * len(UTIL_METRICS)
        return self._table[(model, min(same)[1])]


class PairFeatures:
    """The fine-grained feature vector phi(self, co) of one co-runner, memoised.

    ``phi = [1, aggressor(co), victim(self)]`` plus, with utilization, ``[sm, l2, dram]``
    of the co-runner and ``[l2, dram]`` of the target. Multiply by the overlap fraction to
    get the regression features of that co-runner.
    """

    def __init__(self, samples: pd.DataFrame) -> None:
        self.intensities = Intensities(samples)
        self.util = UtilTable(samples)
        self.names: tuple[str, ...] = ("const", "co_aggressor", "self_victim")
        if self.util:
            self.names += tuple(f"co_{m}" for m in UTIL_METRICS) + ("self_l2", "self_dram")
        self._memo: dict[tuple[str, int, str, int], tuple[float, ...]] = {}

    def __call__(self, model: str, batch: int, co_model: str, co_batch: int
                 ) -> tuple[float, ...]:
        key = (model, batch, co_model, co_batch)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        phi: tuple[float, ...] = (1.0, self.intensities.aggressor(co_model, co_batch),
                                  self.intensities.victim(model, batch))
        if self.util:
            co = self.util.get(co_model, co_batch)
            own = self.util.get(model, batch)
            phi += tuple(co) + (own[1], own[2])
        self._memo[key] = phi
        return phi

    def matrix(self, samples: pd.DataFrame) -> np.ndarray:
        """phi for every row of ``samples`` (n x d), not multiplied by the fraction."""
        return np.array([self(m, int(b), c, int(cb)) for m, b, c, cb in _keys(samples)],
                        dtype=float).reshape(len(samples), len(self.names))


def _keys(samples: pd.DataFrame) -> Iterable[tuple[str, int, str, int]]:
    return zip(samples["model"].astype(str), samples["batch"].astype(int),
               samples["co_model"].astype(str), samples["co_batch"].astype(int), strict=True)


def ridge_solve(x: np.ndarray, y: np.ndarray, ridge: float,
                weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted least squares with a small, scale-free ridge, solved by ``lstsq``.

    Column j is penalised by ``ridge * sum_i x_ij^2`` (a relative damping), so the
    shrinkage does not depend on the units of a feature; ``lstsq`` copes with a constant
    or all-zero column.
    """
    if weights is not None:
        sw = np.sqrt(weights)
        x, y = x * sw[:, None], y * sw
    d = x.shape[1]
    damp = np.sqrt(ridge * np.sum(x * x, axis=0))
    aug_x = np.vstack([x, np.diag(damp)])
    aug_y = np.concatenate([y, np.zeros(d)])
    coef, *_ = np.linalg.lstsq(aug_x, aug_y, rcond=None)
    return coef
