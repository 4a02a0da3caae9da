"""The workload contract: what the engine and the live executor consume.

An open-loop workload yields :class:`~strait_sim.requests.RequestChunk` column arrays in
arrival order, lazily, so that a run of 10,000,000 requests never holds them all. A
closed-loop workload (clients that wait for an answer, think, and ask again) cannot be
generated ahead of the system's responses; it opens a :class:`ClosedLoopSession` that the
driver tells of each request's end.

Ids: the driver numbers requests 0, 1, 2, ... in the order it receives them.
Deadlines in chunks are absolute (seconds on the run's clock).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from strait_sim.requests import Request, RequestChunk

if TYPE_CHECKING:
    from strait_sim.profile_bundle import ProfileBundle


class ClosedLoopSession(ABC):
    """Feedback half of a closed-loop workload, driven by the engine or live executor."""

    @abstractmethod
    def first_requests(self) -> RequestChunk:
        """One request per client, each at that client's first arrival time."""

    @abstractmethod
    def next_after(self, request: Request, end_s: float) -> RequestChunk | None:
        """The client that sent ``request`` saw it end at ``end_s`` (any status); return
        its next request (arrival after its think time), or None when it is done."""


class Workload(ABC):
    """A reproducible request stream: same profile and seed, same requests."""

    kind: ClassVar[str] = ""
    closed_loop: ClassVar[bool] = False
    models: tuple[str, ...]

    @abstractmethod
    def chunks(self, profile: ProfileBundle, seed: int) -> Iterator[RequestChunk]:
        """Yield the open-loop stream in arrival order (raise for closed loops)."""

    def session(self, profile: ProfileBundle, seed: int) -> ClosedLoopSession:
        raise TypeError(f"workload {self.kind} is open-loop: use chunks()")

    @abstractmethod
    def describe(self) -> dict:
        """Every resolved parameter, JSON-able, enough to repeat the run."""

    def expected_count(self) -> int | None:
        """Approximate number of requests, for progress bars (None if unknown)."""
        return None

    def time_origin_s(self) -> float:
        """Where the run's measurement window starts on the run's clock: run-wide rates
        (goodput, the device's busy fraction, ``duration_s``) are taken over the time
        from here to the last request's end, so that idle time before a workload begins
        does not dilute them. A generated or closed-loop workload starts at 0."""
        return 0.0
