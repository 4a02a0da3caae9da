"""What every measurement routine is given: the backend, the bundle, settings, progress.

Each part (solo, pairs, triples, transfers, kernels, utilization) is a function ``run(ctx)`` that
walks its units of work in a fixed order, skips units the bundle already holds, appends
samples, and calls ``ctx.unit_done()`` after each unit so that the bundle on disk is
valid and complete up to that point.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from strait_sim.profiler.backend import Backend
from strait_sim.profiler.bundle_store import BundleStore

PARTS = ("solo", "pairs", "triples", "transfers", "kernels", "utilization")
KIB = 1024
MIB = 1024 * 1024


def default_transfer_sizes(max_bytes: int = 256 * MIB) -> tuple[int, ...]:
    """4 KiB, 16 KiB, ... (powers of 4) up to ``max_bytes``."""
    sizes = []
    s = 4 * KIB
    while s <= max_bytes:
        sizes.append(s)
        s *= 4
    return tuple(sizes)


@dataclass
class Settings:
    """Everything that decides what is measured (recorded in profile.json)."""

    models: tuple[str, ...]
    batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    parts: tuple[str, ...] = ("solo", "pairs", "transfers", "kernels")
    reps: int = 20
    warmup: int = 3
    pair_reps: int = 5
    offsets_frac: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
    pair_budget_s: float | None = 300.0
    triple_budget_s: float | None = 120.0  # 3-way co-location (profile --slots 3)
    transfer_sizes: tuple[int, ...] = field(default_factory=default_transfer_sizes)
    transfer_concurrency: tuple[int, ...] = (1, 2, 4)
    transfer_reps: int = 5
    kernel_rows: int = 200
    seed: int = 0


class Progress:
    """The interface the routines report progress through (the CLI shows a rich bar)."""

    def start(self, part: str, total: int, done: int = 0) -> None:  # noqa: B027
        """A part begins: ``total`` units, ``done`` of them already in the bundle."""

    def advance(self, part: str, n: int = 1) -> None:  # noqa: B027
        """``n`` more units of ``part`` are finished."""

    def note(self, message: str) -> None:  # noqa: B027
        """Something the user should see (a skipped unit, a fallback)."""


@dataclass
class MeasureContext:
    backend: Backend
    store: BundleStore
    settings: Settings
    progress: Progress = field(default_factory=Progress)
    notes: list[str] = field(default_factory=list)
    on_unit_done: Callable[[str], None] | None = None

    def unit_done(self, part: str) -> None:
        """Account one finished unit: progress, then the atomic write of the bundle."""
        self.progress.advance(part)
        if self.on_unit_done is not None:
            self.on_unit_done(part)

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.progress.note(message)

    def key_counts(self, table: str, columns: Iterable[str]) -> Counter:
        cols = tuple(columns)
        return Counter(tuple(_norm(r.get(c)) for c in cols) for r in self.store.rows[table])


def _norm(v: object) -> object:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


class Stopwatch:
    """Wall time spent in one part during this session."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0
