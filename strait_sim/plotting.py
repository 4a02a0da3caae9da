"""Small rules every figure follows, so that no plot shows an impossible value.

- :func:`bounded_interval`: a mean and a 95% interval that respects the metric's range
  (a rate stays in 0..1, a latency above 0). With few seeds a t interval of a rate can
  reach below zero; a percentile bootstrap cannot leave the range of the data, and the
  range is clipped on top of that.
- :func:`log_axis`: a log axis whose labels are plain numbers (1, 10, 100, not 10^2) on
  decades only, so that labels never run into each other.
- :func:`integer_axis`: an axis of whole numbers (batch sizes, counts), never 2^0 or 2.5.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000


def bounded_interval(values: Sequence[float], *, lo: float | None = None,
                     hi: float | None = None, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite ``values``: a percentile bootstrap interval of
    the mean, clipped to [lo, hi]. With one value the interval is that value; with none,
    all three are NaN. Deterministic (fixed ``seed``)."""
    xs = np.asarray([v for v in values if v is not None], dtype=float)
    xs = xs[np.isfinite(xs)]
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(xs.mean())
    if n == 1:
        low = high = mean
    else:
        rng = np.random.default_rng(seed)
        means = rng.choice(xs, size=(BOOTSTRAP_RESAMPLES, n), replace=True).mean(axis=1)
        tail = (1 - level) / 2
        low, high = (float(q) for q in np.quantile(means, [tail, 1 - tail]))
    if lo is not None:
        low, mean = max(low, lo), max(mean, lo)
    if hi is not None:
        high, mean = min(high, hi), min(mean, hi)
    return mean, min(low, mean), max(high, mean), n


def log_axis(ax, which: str = "x") -> None:  # type: ignore[no-untyped-def]
    """Log scale with plain-number labels on decades only (and no minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, numticks=8))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def integer_axis(ax, which: str = "x", values: Sequence[int] | None = None
                 ) -> None:  # type: ignore[no-untyped-def]
    """Whole-number ticks: exactly ``values`` when given (e.g. the measured batch sizes),
    else at most ten integer ticks."""
    from matplotlib.ticker import FixedLocator, MaxNLocator, ScalarFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    if values is not None:
        ticks = sorted({int(v) for v in values})
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_locator(FixedLocator([]))
    else:
        axis.set_major_locator(MaxNLocator(integer=True, nbins=10))
