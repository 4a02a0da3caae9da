"""Co-location calibration: pairs.csv -> slowdowns with their uncertainty (DESIGN.md 5a).

Why a statistical model: a CPU or GPU measured for minutes gives a handful of noisy
co-located samples per (model, batch, co_model, co_batch) key, against a solo median taken
at another moment. A one-parameter fit per key, clamped at a maximum, turned noise into
slowdowns of 20x; this module says how sure it is instead.

Data. Only the repetitions the truth model may use (:func:`strait_sim.sample_split.
split_pairs`, ``"truth"``: even reps) are read. Each pairs.csv row gives TWO views: the
batch that started first (``latency_ms``) and its co-runner (``co_latency_ms``), both
with the same ``overlap_ms``. For a view of victim (m, b) beside (cm, cb) with solo median
S, latency L and overlap O, the fluid model with a fixed co-location cost says

    y = (L - S) / S = c + k * x,   x = O / S,   k = 1 - 1/s,

``c`` the fixed cost (a fraction of the solo time lost once per co-location, e.g. cache
refill), shared by the keys of one ordered model pair (victim m, co-runner cm), and ``s``
the slowdown while both compute. The noise of y is the solo noise of the victim, scaled by
L/S (sd ``cv_m * L/S``), inflated or deflated by a dispersion factor fitted from the
residuals of each model pair.

Fit, per ordered model pair:
1. Fixed cost: least squares with one k per key, with and without the shared c; c is kept
   only where the data show one (c > 0, |t| > 2 and BIC improves), else c = 0.
2. Slowdown: a grid posterior over u = log s >= 0 per key. The prior is not a clamp but a
   hierarchical normal on u: the keys of a model pair shrink towards their pooled value,
   with the spread between keys (tau) estimated from the data (empirical Bayes, floor
   0.05), and the pooled value itself under a weak prior (median slowdown 1.5, sd 1 in
   log s). A key that says little stays near its pair; a key that says a lot keeps its own
   value. Posterior mean and 90% interval of s are reported per key.
3. Identification: a key is *unidentified* when its own samples (flat prior) cannot pin s
   to within a factor 1.5 (90% interval), when its likelihood piles at the grid's top
   (s >= 50: the samples lost more time than overlapping can explain), or it has fewer
   than two views with overlap. Unidentified keys are listed by name in warnings
   (:func:`calibrate`), in ``profile show`` and in the calibration report; their value is
   the pair's pooled one (that is what the posterior gives them).
4. Samples a fluid model cannot explain (lost more than they overlapped, y > x) are KEPT:
   under the noise model they are solo noise on the baseline, and dropping them would
   bias k down. They are counted per key and in total.

Variance: the spread of the per-view ratio (y - c) / (k x) around 1, less what the solo
noise already explains (deconvolved: var_true = var(r) - mean noise var), pooled per
victim model over views with a predicted excess >= 0.1. :meth:`Calibration.scale_quantiles`
gives a 64-quantile table with mean 1; the engine draws one scale per batch and applies
s_eff = 1 + (s - 1) * scale, so the simulated tail has the measured spread and the solo
draw still carries the solo noise.

More co-runners than pairs: the excesses combine as s = 1 + sum_i w^i (s_(i) - 1), the
excesses sorted largest first. w = 1 (additive: exact for a time-shared device, where
three equal jobs each get a third) unless 3-way samples exist (``triples.csv`` beside the
bundle, written by ``profile --slots 3``): then w in [0, 1] is fitted to them by least
squares (even reps) and recorded with the residual at the fitted w, and checked on the odd
reps against the additive rule (:class:`ThreeWayRule`, printed by ``profile show``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from strait_sim.sample_split import split_is_out_of_sample, split_pairs

U_MAX = math.log(50.0)
GRID = np.linspace(0.0, U_MAX, 801)
TOP = GRID >= U_MAX - 0.05  # the grid's top: a likelihood piled here is unidentified
PRIOR_MEDIAN = 1.5
PRIOR_SD = 1.0
TAU_FLOOR = 0.02
TAU_FEW_KEYS = 0.25
IDENTIFIED_RATIO = 1.5
SCALE_QUANTILES = 64
MIN_SCALE_VIEWS = 8
MIN_SPREAD = 0.5  # a fixed cost is spread over at least half the solo time

Key = tuple[str, int, str, int]


@dataclass(frozen=True)
class KeyFit:
    """Posterior of one (model, batch, co_model, co_batch) slowdown."""

    model: str
    batch: int
    co_model: str
    co_batch: int
    views: int
    slowdown: float  # posterior median of s while both compute
    lo: float  # 90% credible interval
    hi: float
    own_lo: float  # 90% interval of the key's own samples alone (flat prior)
    own_hi: float
    identified: bool
    reason: str
    unexplained: int  # views that lost more time than they overlapped
    fixed_cost: float  # c, a fraction of the solo time (the pair's)
    typical_overlap: float  # median x = O / S of the key's views
    effective_slowdown: float  # s with the fixed cost spread over the typical overlap

    @property
    def key(self) -> Key:
        return (self.model, self.batch, self.co_model, self.co_batch)


@dataclass(frozen=True)
class PairFit:
    """Pooled values of one ordered model pair (victim, co-runner)."""

    model: str
    co_model: str
    views: int
    keys: int
    slowdown: float  # posterior median of the pooled s
    tau: float  # spread of log s between the pair's keys
    fixed_cost: float
    fixed_cost_se: float
    fixed_cost_kept: bool
    dispersion: float  # residual sd / the solo-noise sd
    identified: bool  # at least one key of the pair identifies its slowdown
    log_slowdown: float  # posterior mean of the pooled log s (the keys' prior mean)


@dataclass(frozen=True)
class ThreeWayRule:
    """How excesses combine for more co-runners than measured pairs."""

    weight: float  # w in s = 1 + sum_i w^i (s_(i) - 1)
    points: int  # 3-way views it was fitted to (0: the additive default)
    rel_error: float  # median |predicted - measured| / measured latency at the fitted w
    # the check on views the fit did not see (odd reps of triples.csv, when it has both)
    holdout_points: int = 0
    holdout_rel_error: float = float("nan")  # at the fitted w
    holdout_additive_rel_error: float = float("nan")  # at w = 1, for comparison
    rows: int = 0  # rows of triples.csv (usable or not)

    def describe(self) -> str:
        """One line for ``profile show``."""
        if not self.points:
            if self.rows:
                return (f"3-way rule: none of the {self.rows} 3-way views is usable (no "
                        f"time when all three computed together, or a pair key the "
                        f"calibration lacks); excesses add (w = 1)")
            return ("3-way rule: no 3-way points measured (profile --slots 3); excesses "
                    "add (w = 1)")
        head = (f"3-way rule: w = {self.weight:.2f} fitted to {self.points} measured views "
                f"(median |error| of the predicted latency {self.rel_error:.1%})")
        if not self.holdout_points:
            return head + "; no held-out views (one repetition): the check is in-sample"
        return (f"{head}; on {self.holdout_points} held-out views (odd reps): "
                f"{self.holdout_rel_error:.1%} at the fitted w, "
                f"{self.holdout_additive_rel_error:.1%} if the excesses added (w = 1)")

    def combine(self, excesses: list[float]) -> float:
        if len(excesses) == 1:
            return 1.0 + excesses[0]
        if self.weight == 1.0:
            return 1.0 + sum(excesses)
        total, f = 0.0, 1.0
        for e in sorted(excesses, reverse=True):
            total += f * e
            f *= self.weight
        return 1.0 + total


@dataclass
class Calibration:
    keys: dict[Key, KeyFit] = field(default_factory=dict)
    pairs: dict[tuple[str, str], PairFit] = field(default_factory=dict)
    scales: dict[str, np.ndarray] = field(default_factory=dict)
    three_way: ThreeWayRule = field(default_factory=lambda: ThreeWayRule(1.0, 0, float("nan")))
    views: int = 0
    unexplained: int = 0
    out_of_sample: bool = False

    @property
    def unidentified(self) -> list[Key]:
        return sorted(k for k, f in self.keys.items() if not f.identified)

    def warnings(self) -> list[str]:
        bad = self.unidentified
        if not bad:
            return []
        names = ", ".join(f"{m}@{b}|{cm}@{cb}" for m, b, cm, cb in bad[:12])
        more = f" and {len(bad) - 12} more" if len(bad) > 12 else ""
        return [f"{len(bad)} of {len(self.keys)} pair slowdown(s) not identified by the "
                f"samples (they take their model pair's pooled value): {names}{more}"]

    def table(self) -> pd.DataFrame:
        cols = ["model", "batch", "co_model", "co_batch", "views", "slowdown", "lo", "hi",
                "own_lo", "own_hi", "identified", "reason", "unexplained", "fixed_cost",
                "typical_overlap", "effective_slowdown"]
        rows = [{c: getattr(f, c) for c in cols} for f in self.keys.values()]
        return pd.DataFrame(rows, columns=cols).sort_values(
            ["model", "co_model", "batch", "co_batch"]).reset_index(drop=True)

    def scale_quantiles(self, model: str) -> np.ndarray:
        return self.scales.get(model, np.ones(SCALE_QUANTILES))


# -- data ------------------------------------------------------------------------------------
def views_of(pairs: pd.DataFrame, solo: pd.DataFrame) -> pd.DataFrame:
    """Both views of every pair sample with their solo baseline and noise level.

    Columns: model, batch, co_model, co_batch, latency_ms, overlap_ms, solo_ms, cv, y, x,
    sd (the noise sd of y before the pair's dispersion factor).
    """
    g = solo.groupby(["model", "batch"])["latency_ms"]
    med = g.median().to_dict()
    cv_model = (g.std(ddof=1) / g.mean()).groupby(level=0).median().fillna(0.05).to_dict()
    off = pairs["offset_ms"].to_numpy(dtype=float)
    la, lc = pairs["latency_ms"].to_numpy(dtype=float), pairs["co_latency_ms"].to_numpy(dtype=float)
    own = pd.DataFrame({"model": pairs["model"], "batch": pairs["batch"],
                        "co_model": pairs["co_model"], "co_batch": pairs["co_batch"],
                        "latency_ms": la, "overlap_ms": pairs["overlap_ms"],
                        "delay_ms": off, "ends_first": la <= off + lc})
    other = pd.DataFrame({"model": pairs["co_model"], "batch": pairs["co_batch"],
                          "co_model": pairs["model"], "co_batch": pairs["batch"],
                          "latency_ms": lc, "overlap_ms": pairs["overlap_ms"],
                          "delay_ms": 0.0, "ends_first": off + lc < la})
    v = pd.concat([own, other], ignore_index=True)
    v["batch"] = v["batch"].astype(int)
    v["co_batch"] = v["co_batch"].astype(int)
    v["solo_ms"] = [med.get((m, b), np.nan) for m, b in zip(v["model"], v["batch"],
                                                          strict=True)]
    v = v.dropna(subset=["solo_ms"]).reset_index(drop=True)
    v["cv"] = [max(0.01, float(cv_model.get(m, 0.05))) for m in v["model"]]
    v["y"] = (v["latency_ms"] - v["solo_ms"]) / v["solo_ms"]
    v["x"] = v["overlap_ms"] / v["solo_ms"]
    # a victim that ends during the overlap: its overlap grows with its own noisy work, so
    # y = k x would be biased; the fluid identity for it is (L - d) = s (W - d), d = how
    # long it ran before the co-runner started: z = s (x2 + noise)
    v["ends_first"] = v["ends_first"].astype(bool) & (v["overlap_ms"] > 0)
    v["z"] = (v["latency_ms"] - v["delay_ms"]) / v["solo_ms"]
    v["x2"] = (v["solo_ms"] - v["delay_ms"]) / v["solo_ms"]
    v["sd"] = v["cv"]
    return v


# -- fit ------------------------------------------------------------------------------------
def _loglik(y: np.ndarray, x: np.ndarray, sd: np.ndarray, first: np.ndarray,
            z: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Log-likelihood over GRID (u = log s) of the key's views.

    A victim that outlasts its co-runner: y = (1 - 1/s) x + noise(sd). One that ends
    during the overlap: z = s (x2 + noise(sd)), noise sd s * sd."""
    k = 1.0 - np.exp(-GRID)
    s = np.exp(GRID)
    out = np.zeros_like(GRID)
    o = ~first
    if o.any():
        r = (y[o, None] - k[None, :] * x[o, None]) / sd[o, None]
        out += -0.5 * (r * r).sum(axis=0)
    if first.any():
        r = (z[first, None] - s[None, :] * x2[first, None]) / (s[None, :] * sd[first, None])
        out += -0.5 * (r * r).sum(axis=0) - first.sum() * GRID
    return out


def _summ(logp: np.ndarray) -> tuple[float, float, float, float, float]:
    """Posterior median of s, 5% and 95% of s, mean and sd of u, from a grid log-density."""
    p = np.exp(logp - logp.max())
    p /= p.sum()
    s = np.exp(GRID)
    cdf = np.cumsum(p)
    lo = float(s[min(int(np.searchsorted(cdf, 0.05)), len(s) - 1)])
    hi = float(s[min(int(np.searchsorted(cdf, 0.95)), len(s) - 1)])
    mid = float(s[min(int(np.searchsorted(cdf, 0.5)), len(s) - 1)])
    mu = float(np.dot(p, GRID))
    sd = float(np.sqrt(max(np.dot(p, (GRID - mu) ** 2), 0.0)))
    return mid, lo, hi, mu, sd


def _mode_se(ll: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood log s and its standard error from the curvature at the mode
    (the grid mean of a flat-prior posterior is pulled up where the likelihood flattens
    towards large s, which would bias the surface the keys shrink to)."""
    i = int(np.argmax(ll))
    h = GRID[1] - GRID[0]
    j = min(max(i, 1), len(GRID) - 2)
    d2 = (ll[j + 1] - 2 * ll[j] + ll[j - 1]) / (h * h)
    if d2 < -1e-9:
        return float(GRID[i]), float(1.0 / math.sqrt(-d2))
    return float(GRID[i]), PRIOR_SD


@dataclass(frozen=True)
class _Linear:
    """The linear stage of one victim model: baseline corrections and fixed costs."""

    delta: dict[int, float]  # per batch: the solo median's error, a fraction of it
    cost: dict[str, tuple[float, float, bool]]  # per co-model: (c, se, kept)
    dispersion: dict[str, float]  # per co-model: residual sd / noise sd


def _adjusted(v: pd.DataFrame, lin: _Linear) -> tuple[np.ndarray, ...]:
    """(y, x, sd, ends_first, z, x2) of views with the baseline and fixed cost removed."""
    delta = np.array([lin.delta.get(int(b), 0.0) for b in v["batch"]])
    c = np.array([lin.cost.get(cm, (0.0, 0.0, False))[0] for cm in v["co_model"]])
    disp = np.array([min(max(lin.dispersion.get(cm, 1.0), 0.5), 5.0) for cm in v["co_model"]])
    return (v["y"].to_numpy() - delta - c, v["x"].to_numpy(), v["sd"].to_numpy() * disp,
            v["ends_first"].to_numpy(), v["z"].to_numpy() - c, v["x2"].to_numpy() + delta)


def _joint_mle(v: pd.DataFrame, base_se: dict[int, float], with_c: list[str]
               ) -> tuple[np.ndarray, dict[int, float], dict[str, tuple[float, float]], float,
                          np.ndarray]:
    """Joint maximum likelihood of one victim's keys (log s), baselines and fixed costs.

    The exact fluid likelihood in units of the victim's own solo work: a view that
    outlasts its co-runner has W/S - 1 = y - delta - c - (1 - 1/s) x; one that ends during
    the overlap has W/S - 1 = (z - c) / s - x2 - delta, with Jacobian 1/s. Fitting the
    keys and the nuisances together matters: fitted one after the other, a key's slowdown
    absorbs the fixed cost (both raise the latency of overlapped views).
    Returns (u per view's key, delta, c, negative log-likelihood, residuals).
    """
    from scipy.optimize import minimize

    keys = list(zip(v["batch"].astype(int), v["co_model"], v["co_batch"].astype(int),
                    strict=True))
    kcode = pd.factorize(pd.Series(keys))[0]
    nk = int(kcode.max()) + 1
    bs = sorted({int(b) for b in v["batch"]})
    bcode = np.searchsorted(bs, v["batch"].to_numpy(dtype=int))
    ccode = np.array([with_c.index(c) if c in with_c else -1 for c in v["co_model"]])
    has_c = (ccode >= 0) & (v["overlap_ms"].to_numpy() > 0)
    ccode = np.where(has_c, ccode, 0)
    first = v["ends_first"].to_numpy()
    y, x, z, x2 = (v[c].to_numpy() for c in ("y", "x", "z", "x2"))
    sd = v["sd"].to_numpy()
    prior_sd = np.array([max(base_se.get(b, 0.02), 1e-4) for b in bs])
    nc = len(with_c)

    def unpack(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return p[:nk], p[nk:nk + len(bs)], p[nk + len(bs):]

    rows = np.arange(len(v))
    nb = len(bs)

    def parts(p: np.ndarray) -> tuple[np.ndarray, ...]:
        u, d, c = unpack(p)
        uv, dv = u[kcode], d[bcode]
        cv = np.where(has_c, c[ccode] if nc else 0.0, 0.0)
        e = np.exp(-uv)
        r = np.where(first, (z - cv) * e - x2 - dv, y - dv - cv - (1.0 - e) * x) / sd
        # derivatives of r by the view's u, d and c
        du = np.where(first, -(z - cv) * e, -e * x) / sd
        dc = np.where(first, -e, -1.0) / sd * has_c
        return r, uv, du, -1.0 / sd, dc, d

    def nll_grad(p: np.ndarray) -> tuple[float, np.ndarray]:
        r, uv, du, dd, dc, d = parts(p)
        f = float(0.5 * np.sum(r * r) + np.sum(uv[first]) + 0.5 * np.sum((d / prior_sd) ** 2))
        gu = np.bincount(kcode, r * du + first, minlength=nk)
        gd = np.bincount(bcode, r * dd, minlength=nb) + d / prior_sd ** 2
        gc = np.bincount(ccode, r * dc, minlength=nc) if nc else np.zeros(0)
        return f, np.concatenate([gu, gd, gc])

    p0 = np.concatenate([np.full(nk, 0.3), np.zeros(nb), np.zeros(nc)])
    bounds = [(0.0, U_MAX)] * nk + [(None, None)] * (nb + nc)
    res = minimize(nll_grad, p0, jac=True, method="L-BFGS-B", bounds=bounds)
    u, d, c = unpack(res.x)
    r, _, du, dd, dc, _ = parts(res.x)
    se_c = np.zeros(nc)
    if nc:  # Gauss-Newton covariance: (J'J + prior)^-1
        jac = np.zeros((len(v), nk + nb + nc))
        jac[rows, kcode] = du
        jac[rows, nk + bcode] = dd
        jac[rows, nk + nb + ccode] = dc
        info = jac.T @ jac
        info[nk:nk + nb, nk:nk + nb] += np.diag(1.0 / prior_sd ** 2)
        cov = np.linalg.pinv(info)
        se_c = np.sqrt(np.maximum(np.diag(cov)[nk + nb:], 0.0))
    return (u[kcode], {b: float(d[i]) for i, b in enumerate(bs)},
            {cm: (float(c[i]), float(se_c[i])) for i, cm in enumerate(with_c)},
            float(res.fun), r)


def _victim_nuisance(v: pd.DataFrame, base_se: dict[int, float]) -> _Linear:
    """Baselines delta_b (ridge prior: the solo median's own standard error ``base_se``,
    so they move only as far as the pair data insist) and fixed costs c_cm of one victim,
    from the joint likelihood. A fixed cost is kept where it is positive, its Wald |t| > 2
    (Gauss-Newton standard error) and BIC improves."""
    cms = sorted(set(v["co_model"]))
    _, delta0, _, nll0, res0 = _joint_mle(v, base_se, [])
    n = len(v)
    cost = {c: (0.0, float("nan"), False) for c in cms}
    delta, res = delta0, res0
    overlapped = v["overlap_ms"].to_numpy() > 0
    # a fixed cost is told apart from a shifted baseline only by views without overlap
    # (the profiler's sequential baseline runs): at least two for every batch size
    alone = pd.Series(~overlapped).groupby(v["batch"].to_numpy()).sum()
    if n > 3 * len(cms) + 2 and len(alone) and int(alone.min()) >= 2:
        _, _, c1, nll1, _ = _joint_mle(v, base_se, cms)
        kept = []
        for cm in cms:
            val, se = c1[cm]
            cost[cm] = (0.0, se, False)
            if val > 0 and se > 0 and val / se > 3.0:
                kept.append(cm)
        if kept:
            _, delta2, c2, nll2, res2 = _joint_mle(v, base_se, kept)
            if 2.0 * (nll0 - nll2) > len(kept) * math.log(n):
                for cm in kept:
                    cost[cm] = (c2[cm][0], c2[cm][1], True)
                delta, res = delta2, res2
    disp = {}
    cm_arr = v["co_model"].to_numpy()
    nkeys = v.groupby("co_model")[["batch", "co_batch"]].apply(
        lambda g: len(g.drop_duplicates())).to_dict()
    for c in cms:
        sel = cm_arr == c
        dof = int(sel.sum()) - int(nkeys.get(c, 0))
        disp[c] = math.sqrt(float(np.sum(res[sel] ** 2)) / dof) if dof > 0 else 1.0
    return _Linear(delta, cost, disp)


def _identified(ll: np.ndarray, own: tuple, with_overlap: int, unexplained: int
                ) -> tuple[bool, str]:
    """Whether a key's own samples (flat prior) pin its slowdown, and why not."""
    if with_overlap < 2:
        return False, f"{with_overlap} view(s) with overlap"
    if unexplained > with_overlap / 2:
        return False, (f"{unexplained} of {with_overlap} views lost more time than they "
                       "overlapped")
    if float(np.exp(ll - ll.max())[TOP].max()) > 0.5:
        return False, "samples lost more time than overlap can explain"
    if own[2] / own[1] > IDENTIFIED_RATIO:
        return False, f"own 90% interval {own[1]:.2f}-{own[2]:.2f}"
    return True, ""


def _surface(keys: list[tuple[int, int]], good: list[int], own_s: list[tuple]
             ) -> tuple[np.ndarray, np.ndarray, float]:
    """Prior mean and sd of log s per key, and the spread tau between keys: a plane in
    (log2 batch, log2 co_batch) through the identified keys' own estimates (weighted by
    their precision, empirical Bayes for tau), a constant with three or fewer, the weak
    prior alone with none. A key's prior sd is tau plus the plane's own uncertainty at
    that key, so that a plane fitted to a few noisy keys does not pull harder than it
    knows."""
    if not good:
        return (np.full(len(keys), math.log(PRIOR_MEDIAN)), np.full(len(keys), PRIOR_SD),
                PRIOR_SD)
    u = np.array([own_s[i][0] for i in good])
    se2 = np.array([own_s[i][1] ** 2 for i in good])
    feats = np.array([[1.0, math.log2(b), math.log2(cb)] for b, cb in keys])
    design = feats[good] if len(good) >= 4 else feats[good][:, :1]
    tau = TAU_FEW_KEYS if len(good) < 4 else TAU_FLOOR
    for _ in range(20):
        wt = 1.0 / (se2 + tau ** 2)
        coef, *_ = np.linalg.lstsq(design * np.sqrt(wt)[:, None], u * np.sqrt(wt), rcond=None)
        if len(good) < 4:
            break
        resid = u - design @ coef
        dof = max(len(good) - design.shape[1], 1)
        new = math.sqrt(max(float(np.sum(resid ** 2) / dof - np.mean(se2)), TAU_FLOOR ** 2))
        if abs(new - tau) < 1e-4:
            tau = new
            break
        tau = new
    full = feats if len(good) >= 4 else feats[:, :1]
    wt = 1.0 / (se2 + tau ** 2)
    cov = np.linalg.pinv((design * wt[:, None]).T @ design)
    var_pred = np.einsum("ij,jk,ik->i", full, cov, full)
    return np.maximum(full @ coef, 0.0), np.sqrt(tau ** 2 + np.maximum(var_pred, 0.0)), tau


def _fit_pair(m: str, cm: str, v: pd.DataFrame, lin: _Linear,
              fallback: tuple[float, float] | None = None) -> tuple[PairFit, list[KeyFit]]:
    keys = sorted({(int(b), int(cb)) for b, cb in zip(v["batch"], v["co_batch"], strict=True)})
    index = {k: i for i, k in enumerate(keys)}
    codes = np.array([index[(int(b), int(cb))] for b, cb in
                      zip(v["batch"], v["co_batch"], strict=True)])
    c, c_se, kept = lin.cost[cm]
    disp = min(max(lin.dispersion[cm], 0.5), 5.0)
    y, x, sd, first, z, x2 = _adjusted(v, lin)
    own = [_loglik(y[sel], x[sel], sd[sel], first[sel], z[sel], x2[sel])
           for sel in (codes == i for i in range(len(keys)))]
    own_s = [_summ(ll) for ll in own]
    raw_y = v["y"].to_numpy()
    checks = [_identified(ll, o, int((x[codes == i] > 0).sum()),
                          int((raw_y[codes == i] > x[codes == i] + 1e-9).sum()))
              for i, (ll, o) in enumerate(zip(own, own_s, strict=True))]
    # the prior of each key learns from the keys that identify their slowdown: a key whose
    # samples the fluid model cannot explain must not drag it. A pair with no such key
    # takes the victim's level over its other co-runners (``fallback``: mean, sd of log s)
    good = [i for i, (ok, _) in enumerate(checks) if ok]
    if good or fallback is None:
        mu, prior_sd, tau = _surface(keys, good, [_mode_se(ll) for ll in own])
    else:
        mu, tau = np.full(len(keys), fallback[0]), fallback[1]
        prior_sd = np.full(len(keys), tau)
    fits = []
    for i, ((b, cb), ll, o, (ok, why)) in enumerate(zip(keys, own, own_s, checks,
                                                         strict=True)):
        sel = codes == i
        prior = -0.5 * ((GRID - mu[i]) / prior_sd[i]) ** 2
        # an unidentified key takes its prior (the pair's surface, the between-key spread
        # as its uncertainty); an identified one its shrunken posterior
        s, lo, hi, _, _ = _summ(ll + prior if ok else prior)
        nv = int(sel.sum())
        unexplained = int((v["y"].to_numpy()[sel] > x[sel] + 1e-9).sum())
        x_typ = float(np.median(x[sel])) if nv else 0.0
        # the fixed cost spread over the key's typical overlap, at least half its solo
        # time (a cost spread over a sliver of overlap would become a huge slowdown)
        k_eff = 1.0 - 1.0 / s + c / max(x_typ, MIN_SPREAD)
        s_eff = 1.0 / (1.0 - min(k_eff, 1.0 - 1.0 / math.exp(U_MAX)))
        fits.append(KeyFit(m, b, cm, cb, nv, s, lo, hi, o[1], o[2], ok, why, unexplained,
                           c, x_typ, s_eff))
    mu_pool = float(np.mean(mu))
    s_pool = _summ(-0.5 * ((GRID - mu_pool) / tau) ** 2)[0]
    pair = PairFit(m, cm, len(v), len(keys), s_pool, tau, c, c_se, kept, disp, bool(good),
                   mu_pool)
    return pair, fits


def _scales(v: pd.DataFrame, cal: Calibration, lin: dict[str, _Linear]
            ) -> dict[str, np.ndarray]:
    """Per victim model: 64 quantiles of the slowdown scale with the solo noise removed.

    Each view that ended during the overlap (x >= 0.3, key slowdown >= 1.1) implies its
    own slowdown s_i = (L - d) / (S - d); r_i = (s_i - 1) / (s - 1) is its excess
    relative to the key's. The solo noise alone spreads r_i too
    (delta method: var = (ds_i/dW)^2 var(W) / (s - 1)^2); what is left after removing it
    is the spread of the slowdown itself."""
    out: dict[str, np.ndarray] = {}
    probs = (np.arange(SCALE_QUANTILES) + 0.5) / SCALE_QUANTILES
    for m, g in v.groupby("model"):
        fits = [cal.keys[(m, int(b), cm, int(cb))] for b, cm, cb in
                zip(g["batch"], g["co_model"], g["co_batch"], strict=True)]
        s = np.array([f.slowdown for f in fits])
        y, x, _, first, z, x2 = _adjusted(g, lin[str(m)])
        sd = g["sd"].to_numpy()  # the solo noise alone: the dispersion factor would have
        # absorbed the very spread measured here
        # views that ended during the overlap: their implied slowdown z / x2 is linear in
        # the noise (an outlasting view's 1 / (1 - k) has a heavy tail near k = 1)
        use = first & (x >= 0.3) & (s >= 1.1)
        if use.sum() < MIN_SCALE_VIEWS:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            k_i = np.where(first, 1.0 - x2 / z, y / x)
            s_i = np.where(first, z / x2, 1.0 / np.maximum(1.0 - k_i, 1e-3))
            # d s_i / d noise: s / x2 (ends first), s^2 / x (outlasts)
            ds = np.where(first, s / x2, s * s / x) * sd
        r = ((s_i - 1.0) / (s - 1.0))[use]
        noise = (ds / (s - 1.0))[use] ** 2
        ok = np.isfinite(r) & np.isfinite(noise)
        r, noise = r[ok], noise[ok]
        if len(r):  # gross outliers (a stalled sample) would dominate a variance
            q1, med, q3 = np.quantile(r, [0.25, 0.5, 0.75])
            keep = np.abs(r - med) <= 5.0 * max(q3 - q1, 1e-9)
            r, noise = r[keep], noise[keep]
        if len(r) < MIN_SCALE_VIEWS:
            continue
        # weighted by precision, so that the views the noise swamps count little
        wt = 1.0 / noise
        mean_r = float(np.sum(wt * r) / np.sum(wt))
        var_r = float(np.sum(wt * (r - mean_r) ** 2) / np.sum(wt)) * len(r) / (len(r) - 1)
        var_true = var_r - float(len(r) / np.sum(wt))
        # keep a spread only where it stands clear of its own sampling error (the
        # variance of a variance: var sqrt(2 / (n - 1))); else the scale stays 1
        if var_r <= 0 or var_true <= 2.0 * var_r * math.sqrt(2.0 / (len(r) - 1)):
            continue
        z_ = 1.0 + (r - mean_r) * math.sqrt(var_true / var_r)
        q = np.maximum(np.quantile(z_, probs), 0.0)
        out[str(m)] = q / q.mean()
    return out


def fit_three_way(triples: pd.DataFrame | None, cal: Calibration,
                  solo: pd.DataFrame) -> ThreeWayRule:
    """Fit w from 3-way views: columns model, batch, co_model, co_batch, co2_model,
    co2_batch, latency_ms, overlap_ms (how long all three computed together), and where
    the profiler wrote them only_co_ms / only_co2_ms (how long the victim computed beside
    only one of them) and rep.

    A view predicts the victim's latency with the fluid identity
    L = S + O3 (1 - 1/s3) + Oa (1 - 1/sa) + Ob (1 - 1/sb): S its solo median, s3 the rule
    applied to the two pair slowdowns sa, sb of the calibration (views whose pair keys the
    calibration lacks are not used). w minimises the squared relative error over [0, 1].
    With even and odd reps, w is fitted on the even ones and checked on the odd ones
    (sample_split): the check says whether the rule predicts 3-way points it never saw."""
    if triples is None or len(triples) == 0:
        return ThreeWayRule(1.0, 0, float("nan"))
    med = solo.groupby(["model", "batch"])["latency_ms"].median().to_dict()
    only_a = triples["only_co_ms"] if "only_co_ms" in triples.columns else None
    only_b = triples["only_co2_ms"] if "only_co2_ms" in triples.columns else None
    reps = triples["rep"] if "rep" in triples.columns else None
    rows, held = [], []
    odd_even = reps is not None and split_is_out_of_sample(triples)
    for n, r in enumerate(triples.itertuples(index=False)):
        a = cal.keys.get((r.model, int(r.batch), r.co_model, int(r.co_batch)))
        b = cal.keys.get((r.model, int(r.batch), r.co2_model, int(r.co2_batch)))
        s = med.get((r.model, int(r.batch)))
        if a is None or b is None or s is None or r.overlap_ms <= 0:
            continue
        row = (s, float(r.latency_ms), float(r.overlap_ms),
               a.effective_slowdown - 1.0, b.effective_slowdown - 1.0,
               float(only_a.iloc[n]) if only_a is not None else 0.0,
               float(only_b.iloc[n]) if only_b is not None else 0.0)
        (held if odd_even and int(reps.iloc[n]) % 2 == 1 else rows).append(row)
    if not rows:
        return ThreeWayRule(1.0, 0, float("nan"), rows=len(triples))
    arr = np.array(rows)
    ws = np.linspace(0.0, 1.0, 101)
    sse = [float(np.sum(three_way_errors(arr, w) ** 2)) for w in ws]
    best = float(ws[int(np.argmin(sse))])
    rule = ThreeWayRule(best, len(rows), float(np.median(np.abs(three_way_errors(arr, best)))),
                        rows=len(triples))
    if held:
        h = np.array(held)
        rule = ThreeWayRule(best, len(rows), rule.rel_error, len(held),
                            float(np.median(np.abs(three_way_errors(h, best)))),
                            float(np.median(np.abs(three_way_errors(h, 1.0)))),
                            rows=len(triples))
    return rule


def three_way_errors(arr: np.ndarray, w: float) -> np.ndarray:
    """(predicted - measured) / measured latency of 3-way views (rows: solo median,
    latency, 3-way overlap, excess a, excess b, overlap with a only, with b only) under
    the rule with weight ``w``."""
    rule = ThreeWayRule(w, 0, 0.0)
    s3 = np.array([rule.combine([ea, eb]) for ea, eb in arr[:, 3:5]])
    pred = (arr[:, 0] + arr[:, 2] * (1.0 - 1.0 / s3)
            + arr[:, 5] * (1.0 - 1.0 / (1.0 + arr[:, 3]))
            + arr[:, 6] * (1.0 - 1.0 / (1.0 + arr[:, 4])))
    return (pred - arr[:, 1]) / arr[:, 1]


def calibrate(pairs: pd.DataFrame | None, solo: pd.DataFrame,
              triples: pd.DataFrame | None = None) -> Calibration:
    """The co-location calibration of a bundle's pairs (truth repetitions only)."""
    cal = Calibration()
    if pairs is None or len(pairs) == 0:
        return cal
    cal.out_of_sample = split_is_out_of_sample(pairs)
    v = views_of(split_pairs(pairs, "truth"), solo)
    cal.views = len(v)
    cal.unexplained = int((v["y"] > v["x"] + 1e-9).sum())
    groups = {(str(m), str(cm)): g for (m, cm), g in v.groupby(["model", "co_model"],
                                                                 sort=True)}
    g = solo.groupby(["model", "batch"])["latency_ms"]
    # standard error of a median: 1.2533 sd / sqrt(n), relative to the median
    base_se = (1.2533 * g.std(ddof=1) / np.sqrt(g.size()) / g.median()).fillna(0.02).to_dict()
    # keys whose views mostly lost more than they overlapped say nothing a fluid model can
    # use: they do not inform the baselines and fixed costs either
    key_cols = ["model", "batch", "co_model", "co_batch"]
    bad_frac = (v["y"] > v["x"] + 1e-9).groupby([v[c] for c in key_cols]).transform("mean")
    trusted = v[~((bad_frac > 0.5) & (v["overlap_ms"] > 0))]
    lin = {}
    for m, gv in v.groupby("model"):
        tv = trusted[trusted["model"] == m]
        lin[str(m)] = _victim_nuisance(tv if len(tv) else gv,
                                       {int(b): float(base_se.get((m, b), 0.02))
                                        for b in gv["batch"].unique()})
        for b in gv["batch"].unique():
            lin[str(m)].delta.setdefault(int(b), 0.0)
        for cm in gv["co_model"].unique():
            lin[str(m)].cost.setdefault(cm, (0.0, float("nan"), False))
            lin[str(m)].dispersion.setdefault(cm, 1.0)
    first = {p: _fit_pair(*p, g, lin[p[0]]) for p, g in groups.items()}
    by_victim: dict[str, list[float]] = {}
    for (m, _), (pair, _) in first.items():
        if pair.identified:
            by_victim.setdefault(m, []).append(pair.log_slowdown)
    every = [u for us in by_victim.values() for u in us]
    for p, gp in groups.items():
        pair, fits = first[p]
        if not pair.identified:
            us = by_victim.get(p[0]) or every
            fallback = (float(np.mean(us)), max(float(np.std(us)), TAU_FEW_KEYS)) if us \
                else (math.log(PRIOR_MEDIAN), PRIOR_SD)
            pair, fits = _fit_pair(*p, gp, lin[p[0]], fallback)
        cal.pairs[p] = pair
        for f in fits:
            cal.keys[f.key] = f
    cal.scales = _scales(v, cal, lin)
    cal.three_way = fit_three_way(triples, cal, solo)
    return cal


def read_triples(profile: object) -> pd.DataFrame | None:
    """triples.csv beside the bundle's tables (``profile --slots 3``), if any."""
    path = getattr(profile, "path", None)
    if path is None:
        return None
    f = path / "triples.csv"
    if not f.is_file():
        return None
    return pd.read_csv(f)


_CACHE: dict[tuple, Calibration] = {}


def calibrate_bundle(profile: object) -> Calibration:
    """The calibration of a bundle, computed once per process and bundle content (every
    simulated run builds a truth model; the fit takes seconds)."""
    digest = getattr(profile, "content_hash", "")
    key = (digest, str(getattr(profile, "path", ""))) if digest else None
    if key is not None and key in _CACHE:
        return _CACHE[key]
    cal = calibrate(getattr(profile, "pairs", None), profile.solo,  # type: ignore[attr-defined]
                    read_triples(profile))
    if key is not None:
        if len(_CACHE) > 16:
            _CACHE.clear()
        _CACHE[key] = cal
    return cal


def interpolate_pair(fits: dict[tuple[int, int], float], pooled: float,
                     max_batch: int) -> np.ndarray:
    """(max_batch, max_batch) slowdowns of one model pair: bilinear in (log2 batch,
    log2 co_batch) over the measured grid (cells never measured take the pooled value),
    flat beyond it; monotone between measured neighbours, no nearest-key jumps."""
    bs = sorted({b for b, _ in fits})
    cbs = sorted({cb for _, cb in fits})
    grid = np.array([[fits.get((b, cb), pooled) for cb in cbs] for b in bs], dtype=float)
    lb, lcb = np.log2(bs), np.log2(cbs)
    q = np.log2(np.arange(1, max_batch + 1))
    # interpolate along co_batch for each measured batch, then along batch
    along_cb = np.array([np.interp(q, lcb, row) for row in grid])  # (len(bs), max_batch)
    return np.array([np.interp(q, lb, along_cb[:, j]) for j in range(max_batch)]).T
