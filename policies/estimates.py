"""What a policy believes a batch will take: H2D copy + compute + D2H copy, in ms.

Shared by the policies that predict (strait, clockwork, gpulet, orion). Everything comes
from the profile *bundle* (measurements) through the predictors of
:mod:`strait_sim.predictors`, never from the simulator's truth model. Solo medians and
transfer coefficients are copied into plain lists per (model, batch) at bind time so that
the scheduler's hot path is table look-ups and a few float operations.

Copies are predicted with :class:`~strait_sim.predictors.transfer.TransferPredictor`: a
fixed cost plus bytes over a fair share of the link (``in_flight`` copies already running
in that direction share it). A bundle without ``transfers.csv`` gives zero copy time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import mul
from typing import TYPE_CHECKING

from strait_sim.predictors.base import CoRunner, InterferencePredictor, Observation

if TYPE_CHECKING:
    from strait_sim.policies.base import CompletedBatch, PolicyContext
    from strait_sim.profile_bundle import ProfileBundle


def build_predictor(name: str, profile: ProfileBundle, params: dict | None
                    ) -> tuple[InterferencePredictor, str]:
    """Fitted predictor ``name``; ``solo`` when the bundle has no pairs.csv (then no
    co-location can be modelled, so nothing else could be fitted). Returns the predictor
    and the name actually used."""
    from strait_sim.predictors.registry import make_predictor, predictor_class

    predictor_class(name)  # unknown name -> one-line error listing the valid ones
    if name != "solo" and not profile.has("pairs"):
        return make_predictor("solo", profile), "solo"
    return make_predictor(name, profile, **(params or {})), name


class ServiceEstimator:
    """Per-(model, batch) predictions of copy and compute times for one run."""

    def __init__(self, ctx: PolicyContext, predictor: InterferencePredictor | None,
                 max_batch: int | None = None, pair_refresh: int = 16) -> None:
        profile = ctx.profile
        self.models = ctx.models
        self.max_batch = max_batch or ctx.max_batch
        top = ctx.max_batch
        self.max_batch = min(self.max_batch, top)
        self.predictor = predictor
        self.online = bool(predictor is not None and predictor.online)
        # solo[model][b] for b in 1..top (index 0 unused)
        self.solo: dict[str, list[float]] = {
            m: [0.0] + [profile.solo_ms(m, b) for b in range(1, top + 1)] for m in ctx.models}
        self.in_bytes = {m: float(profile.io_bytes(m)[0]) for m in ctx.models}
        self.out_bytes = {m: float(profile.io_bytes(m)[1]) for m in ctx.models}
        self.h2d_fixed = self.d2h_fixed = 0.0
        self.h2d_inv = self.d2h_inv = 0.0
        # stretch of a copy per other copy in flight: 1 under fair sharing, the fitted
        # ``share`` where the link's measured rule is partial (the CPU's memory copies)
        self.h2d_share = self.d2h_share = 1.0
        if profile.has("transfers"):
            from strait_sim.predictors.transfer import TransferPredictor

            tp = TransferPredictor.from_profile(profile)
            self.h2d_fixed, self.d2h_fixed = tp.fixed_ms["h2d"], tp.fixed_ms["d2h"]
            self.h2d_inv = 1.0 / tp.bandwidth_bytes_per_ms["h2d"]
            self.d2h_inv = 1.0 / tp.bandwidth_bytes_per_ms["d2h"]
            self.h2d_share = _share(tp, "h2d")
            self.d2h_share = _share(tp, "d2h")
        # fastest possible service of one item (no contention): the early-drop test
        self.min_service_ms = {m: self.h2d_ms(m, 1) + self.solo[m][1] + self.d2h_ms(m, 1)
                               for m in ctx.models}
        self._pair: dict[tuple[str, int, str, int], float] = {}
        self.pair_refresh = pair_refresh
        self._since_refresh = 0
        self._fast_rls = FastRls.wrap(predictor) if self.online else None

    def h2d_ms(self, model: str, size: int, in_flight: int = 0) -> float:
        """H2D copy time beside ``in_flight`` copies: ``fixed + bytes / bw * (1 + in_flight
        * share)`` (``TransferPredictor.predict_ms``, as plain float arithmetic)."""
        stretch = 1.0 + in_flight * self.h2d_share if in_flight else 1.0
        return self.h2d_fixed + self.in_bytes[model] * size * stretch * self.h2d_inv

    def d2h_ms(self, model: str, size: int, in_flight: int = 0) -> float:
        stretch = 1.0 + in_flight * self.d2h_share if in_flight else 1.0
        return self.d2h_fixed + self.out_bytes[model] * size * stretch * self.d2h_inv

    def solo_service_ms(self, model: str, size: int) -> float:
        return self.h2d_ms(model, size) + self.solo[model][size] + self.d2h_ms(model, size)

    def compute_ms(self, model: str, size: int, co_runners: Sequence[CoRunner] = ()) -> float:
        if not co_runners or self.predictor is None:
            return self.solo[model][size]
        return self.predictor.predict(model, size, co_runners)

    def pair_slowdown(self, model: str, size: int, co_model: str, co_size: int) -> float:
        """Predicted slowdown of (model, size) while (co_model, co_size) runs beside it for
        its whole solo duration. Memoised; with an online predictor the memo is refreshed
        every ``pair_refresh`` updates (the guard's view of running batches may lag the
        learner by that many completions; predictions of new batches never do)."""
        key = (model, size, co_model, co_size)
        hit = self._pair.get(key)
        if hit is None:
            solo = self.solo[model][size]
            hit = self.compute_ms(model, size, (CoRunner(co_model, co_size, solo),)) / solo
            self._pair[key] = hit
        return hit

    def observe(self, batch: CompletedBatch) -> None:
        """Feed one completion to an online predictor (co-located completions only: a solo
        run teaches a slowdown model nothing)."""
        if not self.online or not batch.co_runs or batch.failed:
            return
        co = [CoRunner(c.model, c.size, c.overlap_ms) for c in batch.co_runs]
        if self._fast_rls is not None:
            self._fast_rls.update(batch.model, batch.size, co, batch.compute_ms)
        else:
            self.predictor.update(Observation(  # type: ignore[union-attr]
                batch.model, batch.size, tuple(co), batch.compute_ms))
        self._since_refresh += 1
        if self._since_refresh >= self.pair_refresh:
            self._pair.clear()
            self._since_refresh = 0


def _share(tp, direction: str) -> float:  # noqa: ANN001 - a TransferPredictor
    """Stretch per extra concurrent copy under the link's fitted rule, as
    ``TransferPredictor.predict_ms`` reads it: 1 under fair sharing, the fitted ``share``
    where the rule is partial, 1/2 for a serial engine (the mean copy of a round)."""
    fit = getattr(tp, "fits", {}).get(direction)
    rule = getattr(fit, "rule", "fair")
    if rule == "partial":
        return float(fit.share)  # type: ignore[union-attr]
    return 0.5 if rule == "serial" else 1.0


class FastRls:
    """The exact RLS step of :class:`~strait_sim.predictors.rls.RlsPredictor`, on Python
    lists instead of numpy arrays.

    Why: the model has three to eight coefficients, and numpy's per-call overhead made the
    update of every co-located completion cost more than the rest of the scheduler. Same
    arithmetic as ``RlsPredictor.update_xy`` (gain, coefficient update, covariance update
    with forgetting, re-symmetrisation, trace cap); ``tests/test_policies_strait.py``
    checks that both give the same coefficients. The coefficients are written back to the
    predictor after each step (its ``predict`` reads them); the covariance lives here and
    is copied back to ``predictor.P`` by :meth:`sync`.
    """

    def __init__(self, predictor) -> None:  # noqa: ANN001 - an RlsPredictor
        from strait_sim.predictors.rls import MAX_TRACE

        self.p = predictor
        self.lam = float(predictor.forgetting)
        self.P: list[list[float]] = [list(map(float, row)) for row in predictor.P]
        self.max_trace = MAX_TRACE

    @classmethod
    def wrap(cls, predictor) -> FastRls | None:  # noqa: ANN001
        from strait_sim.predictors.rls import RlsPredictor

        if type(predictor) is RlsPredictor and len(predictor.P):
            return cls(predictor)
        return None

    def update(self, model: str, size: int, co: Sequence[CoRunner], latency_ms: float
               ) -> None:
        p = self.p
        solo = p.solo(model, size)
        x = p.regressors(model, size, solo, co)
        if x is None:
            return
        y = latency_ms / solo - 1.0
        if len(x) == 3:
            self._update3(x, y)
        else:
            self._update_n(x, y)

    def _update_n(self, x: list[float], y: float) -> None:
        """One RLS step for any number of coefficients."""
        p = self.p
        P = self.P
        px = [sum(map(mul, row, x)) for row in P]
        denom = self.lam + sum(map(mul, x, px))
        gain = [v / denom for v in px]
        w = p.w
        err = y - sum(map(mul, w, x))
        p.w = [wi + gi * err for wi, gi in zip(w, gain, strict=True)]
        inv = 1.0 / self.lam
        new = [[(pij - gi * pxj) * inv for pij, pxj in zip(row, px, strict=True)]
               for row, gi in zip(P, gain, strict=True)]
        d = len(x)
        for i in range(d):
            row = new[i]
            for j in range(i + 1, d):
                row[j] = new[j][i] = (row[j] + new[j][i]) / 2
        tr = sum(new[i][i] for i in range(d))
        if tr > self.max_trace:
            scale = self.max_trace / tr
            new = [[v * scale for v in row] for row in new]
        self.P = new
        p.updates += 1

    def _update3(self, x: list[float], y: float) -> None:
        """The same step written out for three coefficients (the CPU-bundle case)."""
        p = self.p
        (a, b, c), (d, e, f), (g, h, i) = self.P
        x0, x1, x2 = x
        q0 = a * x0 + b * x1 + c * x2
        q1 = d * x0 + e * x1 + f * x2
        q2 = g * x0 + h * x1 + i * x2
        denom = self.lam + x0 * q0 + x1 * q1 + x2 * q2
        k0, k1, k2 = q0 / denom, q1 / denom, q2 / denom
        w0, w1, w2 = p.w
        err = y - (w0 * x0 + w1 * x1 + w2 * x2)
        p.w = [w0 + k0 * err, w1 + k1 * err, w2 + k2 * err]
        inv = 1.0 / self.lam
        n00 = (a - k0 * q0) * inv
        n11 = (e - k1 * q1) * inv
        n22 = (i - k2 * q2) * inv
        n01 = ((b - k0 * q1) + (d - k1 * q0)) * inv / 2
        n02 = ((c - k0 * q2) + (g - k2 * q0)) * inv / 2
        n12 = ((f - k1 * q2) + (h - k2 * q1)) * inv / 2
        tr = n00 + n11 + n22
        if tr > self.max_trace:
            sc = self.max_trace / tr
            n00, n11, n22, n01, n02, n12 = (n00 * sc, n11 * sc, n22 * sc, n01 * sc, n02 * sc,
                                            n12 * sc)
        self.P = [[n00, n01, n02], [n01, n11, n12], [n02, n12, n22]]
        p.updates += 1

    def sync(self) -> None:
        import numpy as np

        self.p.P = np.array(self.P)


@dataclass(slots=True)
class Believed:
    """What a policy believes of one batch it dispatched: when its compute phase and its
    D2H copy end (seconds), the earliest deadline among its requests, and (``slow``) the
    mean slowdown believed over the rest of its compute phase.

    ``work_ms``: the solo compute work (ms) believed left, kept by an estimator that
    follows progress (:class:`~strait_sim.policies.occupancy.OccupancyEstimator` advances
    it at every change of co-runners); negative until such an estimator first sees the
    batch, which then takes ``(compute_end_s - max(now, compute_start_s)) / slow``."""

    model: str
    size: int
    priority: int
    compute_start_s: float
    compute_end_s: float
    end_s: float
    deadline_s: float
    slow: float = 1.0
    work_ms: float = -1.0


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Validate a numeric parameter at construction (scikit-learn style); a boolean is not
    a number here (``--param x=true`` would run as 1)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not (v >= 0 if allow_zero else v > 0) or v != v or v == float("inf"):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return v


def check_fraction(name: str, value: float) -> float:
    v = check_positive(name, value, allow_zero=True)
    if v > 1:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return v


def check_max_batch(value: int | None) -> int | None:
    if value is None:
        return None
    whole = isinstance(value, int | float) and not isinstance(value, bool) and \
        value == value and value not in (float("inf"), float("-inf")) and \
        int(value) == value  # a boolean is not a batch size: True would be 1
    if not whole or value < 1:
        raise ValueError(f"max_batch must be a whole number >= 1, got {value!r}")
    return int(value)


__all__ = ["Believed", "ServiceEstimator", "build_predictor", "check_fraction",
           "check_max_batch", "check_positive"]
