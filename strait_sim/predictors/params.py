"""Validation of predictor parameters at construction (scikit-learn style).

Parameters come from the CLI and from policy configurations, so a bad value must be a
one-line ``UserError`` naming the predictor and the parameter, not a crash later on.
"""

from __future__ import annotations

import math

from strait_sim.errors import UserError


def check_range(predictor: str, param: str, value: float, *, low: float | None = None,
                high: float | None = None, low_open: bool = False,
                high_open: bool = False) -> float:
    """Return ``value`` as a float if it lies in the interval, else raise ``UserError``."""
    try:
        val = float(value)
    except (TypeError, ValueError):
        raise UserError(f"predictor '{predictor}': parameter '{param}' must be a number, "
                        f"got {value!r}") from None
    ok = math.isfinite(val)
    if ok and low is not None:
        ok = val > low if low_open else val >= low
    if ok and high is not None:
        ok = val < high if high_open else val <= high
    if not ok:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}" \
                   f"{')' if high_open or high is None else ']'}"
        raise UserError(f"predictor '{predictor}': parameter '{param}' must be in "
                        f"{interval}, got {value!r}")
    return val
