"""When does a configuration meet a target "with confidence over seeds"?

Each seed is one independent replication of the workload (arrival copies, model and class
draws, service times). For a target and a configuration the planner has one value per
seed, x_1..x_n (for example the HP on-time share of each run). With mean m, sample
standard deviation s and the Student t quantile t = t_{c, n-1} at confidence c:

- a target of the form "at least B" is **met** when the one-sided lower confidence bound
  of the mean, m - t s / sqrt(n), is >= B; it is **missed** (clearly) when the one-sided
  upper bound m + t s / sqrt(n) is < B;
- "at most B" (latencies) mirrors it: met when m + t s / sqrt(n) <= B, missed when
  m - t s / sqrt(n) > B;
- otherwise the seeds cannot tell: **unsure**.

A configuration meets the targets when it meets every one; it misses when it clearly misses
at least one. The search treats *unsure* like *missed*, so an answer it gives has met every
target at confidence c, and the point one GPU below it has not. With a single seed there is
no spread to estimate: the bound is the value itself (the report says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

MEETS, MISSES, UNSURE = "meets", "misses", "unsure"


@dataclass(frozen=True)
class Bound:
    """A target's per-seed values summarised: mean, one-sided bounds, verdict."""

    mean: float
    lower: float
    upper: float
    n: int
    verdict: str


def half_width(values: list[float], confidence: float) -> float:
    """t_{c, n-1} s / sqrt(n); 0 with one value, inf when a value is infinite."""
    n = len(values)
    if n < 2:
        return 0.0
    if not all(math.isfinite(v) for v in values):
        return math.inf
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    if s == 0.0:
        return 0.0
    return float(stats.t.ppf(confidence, n - 1)) * s / math.sqrt(n)


def bound(values: list[float], target_bound: float, higher_is_better: bool,
          confidence: float) -> Bound:
    """Judge per-seed ``values`` against ``target_bound`` (see the module docstring)."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n if all(math.isfinite(v) for v in values) else math.inf
    if math.isinf(mean) and not higher_is_better:  # a latency of a class never served
        return Bound(mean, math.inf, math.inf, n, MISSES)
    h = half_width(values, confidence)
    lower, upper = mean - h, mean + h
    if higher_is_better:
        verdict = MEETS if lower >= target_bound else MISSES if upper < target_bound \
            else UNSURE
    else:
        verdict = MEETS if upper <= target_bound else MISSES if lower > target_bound \
            else UNSURE
    return Bound(mean, lower, upper, n, verdict)


def combine(verdicts: list[str]) -> str:
    """All targets met -> meets; any clearly missed -> misses; else unsure."""
    if all(v == MEETS for v in verdicts):
        return MEETS
    if any(v == MISSES for v in verdicts):
        return MISSES
    return UNSURE
