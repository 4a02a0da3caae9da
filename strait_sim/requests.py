"""Request records shared by workloads, the engine, the live executor and policies.

Workloads produce requests as :class:`RequestChunk` column arrays (cheap to generate and
to stream); the drivers turn each arrival into one small :class:`Request` object that the
policy sees. Times are seconds on the run's clock; latencies in a profile are milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HIGH = 0
LOW = 1
PRIORITY_NAMES: tuple[str, str] = ("high", "low")

# Final status of a request. PENDING means "not ended yet" and never appears in results.
PENDING = 0
ON_TIME = 1
LATE = 2
DROPPED = 3
REJECTED = 4
FAILED = 5
STATUS_NAMES: tuple[str, ...] = ("pending", "on_time", "late", "dropped", "rejected", "failed")


def priority_code(name: str) -> int:
    """Map 'high'/'low' (also 'hp'/'lp', '0'/'1') to HIGH/LOW."""
    key = str(name).strip().lower()
    if key in ("high", "hp", "0", "h"):
        return HIGH
    if key in ("low", "lp", "1", "l"):
        return LOW
    raise ValueError(f"priority must be 'high' or 'low', got {name!r}")


class Request:
    """One inference request as a policy sees it.

    Plain slotted class rather than a dataclass: millions are created per run and the
    engine's speed depends on construction cost.
    """

    __slots__ = ("id", "model", "priority", "arrival_s", "deadline_s", "items")

    def __init__(self, id: int, model: str, priority: int, arrival_s: float,
                 deadline_s: float, items: int = 1) -> None:
        self.id = id
        self.model = model
        self.priority = priority
        self.arrival_s = arrival_s
        self.deadline_s = deadline_s  # absolute time on the run's clock
        self.items = items

    def __repr__(self) -> str:
        return (f"Request(id={self.id}, model={self.model!r}, "
                f"priority={PRIORITY_NAMES[self.priority]}, arrival_s={self.arrival_s:.6f}, "
                f"deadline_s={self.deadline_s:.6f}, items={self.items})")


@dataclass(frozen=True)
class RequestChunk:
    """A run of consecutive requests as column arrays, sorted by arrival time.

    ``model`` holds indices into ``models``; ``deadline_s`` is absolute. Chunks of one
    workload are yielded in arrival order, so concatenating them gives the whole stream.
    """

    models: tuple[str, ...]
    arrival_s: np.ndarray  # float64
    model: np.ndarray  # int16 index into models
    priority: np.ndarray  # int8, HIGH or LOW
    deadline_s: np.ndarray  # float64, absolute
    items: np.ndarray  # int32, >= 1

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    def __post_init__(self) -> None:
        n = self.arrival_s.shape[0]
        for name in ("model", "priority", "deadline_s", "items"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"RequestChunk column {name} has a different length")
