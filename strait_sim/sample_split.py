"""Which measured repetitions feed the truth model and which feed the predictors.

The simulator must not flatter the policies that predict interference: if the truth model
(what the simulated device does) and a policy's predictor were fitted on the very same
co-located samples, the predictor's simulated accuracy would be in-sample. So the
repetitions of ``pairs.csv`` are split once, here, for everyone:

- ``truth``: samples whose ``rep`` is even (0, 2, 4, ...);
- ``predictors``: samples whose ``rep`` is odd (1, 3, 5, ...).

A profiler run with ``--pair-reps 2`` or more gives both sides samples of every key. A
bundle measured with a single repetition has no odd reps: then both sides use all samples,
and :func:`split_is_out_of_sample` says so, so that reports can flag the accuracy as
in-sample instead of hiding it.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

Part = Literal["truth", "predictors"]


def split_pairs(frame: pd.DataFrame, part: Part) -> pd.DataFrame:
    """The rows of a pairs table that ``part`` may learn from (all rows when no split)."""
    if part not in ("truth", "predictors"):
        raise ValueError(f"part must be 'truth' or 'predictors', got {part!r}")
    if not split_is_out_of_sample(frame):
        return frame
    odd = (frame["rep"].to_numpy() % 2) == 1
    keep = odd if part == "predictors" else ~odd
    return frame[keep]


def split_is_out_of_sample(frame: pd.DataFrame) -> bool:
    """True when the table has both even and odd repetitions, so the split is real."""
    if frame is None or len(frame) == 0 or "rep" not in frame.columns:
        return False
    odd = (frame["rep"].to_numpy() % 2) == 1
    return bool(odd.any() and (~odd).any())
