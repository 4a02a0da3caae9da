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


def readable_log_locator():  # type: ignore[no-untyped-def]
    """Major ticks of a log axis that stay few and apart: 1-2-5 steps within a decade or
    two, decades beyond, every other decade past six (plain numbers fit between them)."""
    from matplotlib.ticker import LogLocator

    class _Readable(LogLocator):
        def tick_values(self, vmin: float, vmax: float):  # type: ignore[no-untyped-def]
            if vmin <= 0 or vmax <= 0 or not np.isfinite([vmin, vmax]).all():
                return super().tick_values(vmin, vmax)
            lo, hi = sorted((vmin, vmax))
            decades = np.log10(hi / lo)
            subs = ((1.0, 2.0, 3.0, 5.0) if decades < 0.8 else (1.0, 2.0, 5.0)
                    if decades < 2.2 else (1.0,))
            step = 2 if decades > 6 else 1
            first, last = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
            ticks = [m * 10.0 ** e for e in range(first, last + 1, step) for m in subs]
            inside = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
            if len(inside) < 2:  # a very narrow range: plain linear-ish ticks
                return np.linspace(lo, hi, 4)
            return np.array(inside)

    return _Readable(base=10)


def log_axis(ax, which: str = "x") -> None:  # type: ignore[no-untyped-def]
    """Log scale with plain-number labels (1, 20, 500; never 10^2 or 2x10^1) that do not
    run into each other, and no minor labels."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(readable_log_locator())
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.10g}"))
    axis.set_minor_formatter(NullFormatter())


def bytes_axis(ax, which: str = "x") -> None:  # type: ignore[no-untyped-def]
    """Log-2 axis of sizes labelled 4 KiB, 1 MiB (not 2^12), at most six labels."""
    from matplotlib.ticker import FuncFormatter, Locator, NullFormatter

    class _Powers(Locator):
        def __call__(self):  # type: ignore[no-untyped-def]
            return self.tick_values(*self.axis.get_view_interval())

        def tick_values(self, vmin: float, vmax: float):  # type: ignore[no-untyped-def]
            lo, hi = sorted((max(vmin, 1.0), max(vmax, 1.0)))
            first, last = int(np.ceil(np.log2(lo))), int(np.floor(np.log2(hi)))
            step = 1
            while (last - first) // step + 1 > 6:
                step *= 2
            return np.array([2.0 ** e for e in range(first, last + 1, step)])

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log", base=2)
    axis.set_major_locator(_Powers())
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: human_bytes(v)))
    axis.set_minor_formatter(NullFormatter())


def human_bytes(v: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if v >= size:
            return f"{v / size:g} {unit}"
    return f"{v:g} B"


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


def clamp_ylim(ax, lo: float | None, hi: float | None) -> None:  # type: ignore[no-untyped-def]
    """Keep matplotlib's automatic y range, but never past the metric's possible range
    (a little padding below ``lo`` so that points on it stay visible)."""
    bottom, top = ax.get_ylim()
    if hi is not None:
        top = min(top, hi * 1.02)
    if lo is not None:
        bottom = lo - 0.02 * (top - lo)
    ax.set_ylim(bottom, top)
