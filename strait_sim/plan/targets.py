"""What a deployment must achieve, per priority class, and how one run is scored against it.

Three kinds of target, each read from a run's ``summary.json`` (``by_class``):

- ``on_time``: the share of the class's requests that finished by their deadline,
  ``1 - violation_rate`` (dropped, rejected and late requests all count against it), at
  least the bound;
- ``p99``: the 99th percentile of completed requests' latency in ms, at most the bound;
- ``mean``: the mean latency of completed requests in ms, at most the bound.

A class with no requests in a run meets an ``on_time`` target vacuously; a class with
requests but none completed has an infinite latency, so it misses a latency target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from strait_sim.errors import UserError
from strait_sim.requests import PRIORITY_NAMES

# metric -> (summary field, direction): +1 means "at least the bound", -1 "at most".
METRICS: dict[str, tuple[str, int]] = {"on_time": ("violation_rate", +1),
                                       "p99": ("p99_ms", -1), "mean": ("mean_ms", -1)}
CLASS_ALIASES = {"high": "high", "hp": "high", "low": "low", "lp": "low"}


@dataclass(frozen=True)
class Target:
    """One requirement: ``metric`` of class ``cls`` at least (on_time) or at most the bound."""

    cls: str
    metric: str
    bound: float

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric][1] > 0

    def label(self) -> str:
        if self.metric == "on_time":
            return f"{self.cls} on time >= {self.bound:g}"
        return f"{self.cls} {self.metric} latency <= {self.bound:g} ms"

    def value(self, summary: dict) -> float:
        """This target's metric in one run's summary."""
        c = summary["by_class"][self.cls]
        if self.metric == "on_time":
            rate = c.get("violation_rate")
            return 1.0 if rate is None else 1.0 - float(rate)
        v = c.get(METRICS[self.metric][0])
        return math.inf if v is None else float(v)

    def met_by(self, value: float) -> bool:
        return value >= self.bound if self.higher_is_better else value <= self.bound


def parse_class_values(text: str, flag: str) -> list[tuple[str, float]]:
    """``high=0.99,low=0.9`` -> [("high", 0.99), ("low", 0.9)], one line on any mistake."""
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{flag}: expected CLASS=VALUE[,CLASS=VALUE], e.g. high=0.99,low=0.9")
    out: list[tuple[str, float]] = []
    for part in text.split(","):
        name, eq, raw = part.strip().partition("=")
        if not eq or not name.strip() or not raw.strip():
            raise UserError(f"{flag}: '{part.strip()}' is not CLASS=VALUE "
                            f"(e.g. high=0.99,low=0.9)")
        cls = CLASS_ALIASES.get(name.strip().lower())
        if cls is None:
            raise UserError(f"{flag}: unknown class '{name.strip()}'; valid: "
                            f"{', '.join(PRIORITY_NAMES)}")
        try:
            value = float(raw)
        except ValueError:
            raise UserError(f"{flag}: '{raw.strip()}' is not a number") from None
        if not math.isfinite(value):
            raise UserError(f"{flag}: '{raw.strip()}' must be a finite number")
        if any(c == cls for c, _ in out):
            raise UserError(f"{flag}: class '{cls}' is given twice")
        out.append((cls, value))
    return out


def parse_targets(on_time: str | None = None, p99: str | None = None,
                  mean: str | None = None) -> list[Target]:
    """The targets of ``--target``, ``--p99`` and ``--mean-latency`` (at least one)."""
    targets: list[Target] = []
    if on_time is not None:
        for cls, v in parse_class_values(on_time, "--target"):
            if not 0.0 < v <= 1.0:
                raise UserError(f"--target: the on-time share of '{cls}' must be in (0, 1], "
                                f"got {v:g}")
            targets.append(Target(cls, "on_time", v))
    for text, metric, flag in ((p99, "p99", "--p99"), (mean, "mean", "--mean-latency")):
        if text is None:
            continue
        for cls, v in parse_class_values(text, flag):
            if not v > 0:
                raise UserError(f"{flag}: the bound of '{cls}' must be > 0 ms, got {v:g}")
            targets.append(Target(cls, metric, v))
    if not targets:
        raise UserError("no target: give --target high=0.99 (on-time shares), --p99 or "
                        "--mean-latency")
    return targets
