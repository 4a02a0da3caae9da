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
    """Return ``value`` as a float if it lies in the interval, else raise ``UserError``.
    A boolean is not a number here (``float(True)`` is 1.0: ``damping=true`` ran as 1)."""
    try:
        if isinstance(value, bool):
            raise TypeError
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


#: numpy's ``RandomState`` and scikit-learn's ``random_state`` take seeds in 0..2**32-1
SEED_MAX = 2**32 - 1


def check_int(predictor: str, param: str, value: object, *, low: int,
              high: int | None = None, why: str = "") -> int:
    """Return ``value`` as an int if it is a whole number in ``[low, high]``.

    Why not ``int(value)``: that truncates 1.5 to 1 silently and raises a bare
    ``ValueError`` on text. ``why`` explains an upper bound in the message (a bound the
    user cannot guess, such as a size that would exhaust memory).
    """
    try:
        if isinstance(value, bool):  # not a count: True would be 1
            raise TypeError
        val = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UserError(f"predictor '{predictor}': parameter '{param}' must be a whole "
                        f"number, got {value!r}") from None
    if not math.isfinite(val) or val != math.floor(val):
        raise UserError(f"predictor '{predictor}': parameter '{param}' must be a whole "
                        f"number, got {value!r}")
    whole = int(value) if isinstance(value, int) else int(val)
    if whole < low or (high is not None and whole > high):
        hi = "" if high is None else f"..{high:,}"
        bound = f"{low}{hi}" if high is not None else f">= {low}"
        reason = f" ({why})" if why and high is not None and whole > high else ""
        raise UserError(f"predictor '{predictor}': parameter '{param}' must be in "
                        f"{bound}, got {value!r}{reason}")
    return whole


def check_seed(predictor: str, value: object, param: str = "seed") -> int:
    """A seed as numpy and scikit-learn accept it: a whole number in 0..2**32-1."""
    return check_int(predictor, param, value, low=0, high=SEED_MAX,
                     why="numpy and scikit-learn take 32-bit seeds")
