"""What a policy sees in live mode: the :class:`SystemView` of the real device.

The host does not observe a batch's phase boundaries while it runs: the backend reports
the device-timed phases (H2D, compute, D2H) only when the whole job has finished. So a
running :class:`LiveBatch` shows an *estimated* phase, from the time since it was
submitted and the profile's expected H2D and compute times for its (model, size) (the
same medians a policy could look up itself). ``compute_start_s`` is that estimate too,
until the job ends. ``transfers_in_flight`` counts batches whose estimated phase is the
direction asked. This is documented in docs/validation.md as one of the ways live mode
cannot be exactly the engine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from strait_sim.requests import Request

if TYPE_CHECKING:
    from strait_sim.live.executor import LiveExecutor


class PhaseEstimates:
    """Expected H2D and compute seconds of (model, size), from the profile, cached."""

    def __init__(self, profile, pcie: bool) -> None:
        self.profile = profile
        self._links = None
        if pcie and profile.has("transfers"):
            from strait_sim.truth.pcie import fit_link

            try:
                self._links = (fit_link(profile, "h2d"), fit_link(profile, "d2h"))
            except Exception:  # an unfittable table: estimate copies as instantaneous
                self._links = None
        self._cache: dict[tuple[str, int], tuple[float, float]] = {}

    def h2d_compute_s(self, model: str, size: int) -> tuple[float, float]:
        key = (model, size)
        got = self._cache.get(key)
        if got is None:
            h2d = 0.0
            if self._links is not None:
                h2d = self._links[0].alone_ms(self.profile.io_bytes(model)[0] * size) / 1e3
            got = (h2d, self.profile.solo_ms(model, size) / 1e3)
            self._cache[key] = got
        return got


class LiveBatch:
    """One batch submitted to the backend (a ``RunningBatch`` for policies)."""

    __slots__ = ("batch_id", "gpu", "slot", "model", "size", "requests", "priority",
                 "dispatch_s", "predicted_ms", "submit_s", "job", "expected", "state",
                 "measured", "reset_until_s", "_clock")

    def __init__(self, batch_id: int, gpu: int, slot: int, model: str, size: int,
                 requests: tuple[Request, ...], dispatch_s: float,
                 predicted_ms: float | None, expected: tuple[float, float],
                 clock: Callable[[], float]) -> None:
        self.batch_id = batch_id
        self.gpu = gpu
        self.slot = slot
        self.model = model
        self.size = size
        self.requests = requests
        self.priority = min(r.priority for r in requests)
        self.dispatch_s = dispatch_s  # run clock: when the executor applied the Dispatch
        self.predicted_ms = predicted_ms
        self.submit_s = dispatch_s  # run clock: just before backend.submit
        self.job = None
        self.expected = expected  # (h2d_s, compute_s) expected from the profile
        self.state = "running"  # running | done | preempted | reset
        self.measured: tuple[float, float, float, float] | None = None  # run clock
        self.reset_until_s = math.nan
        self._clock = clock

    @property
    def phase(self) -> str:
        if self.state == "reset":
            return "reset"
        if self.state == "preempted":
            return "preempted"
        if self.measured is not None:  # ended on the device, not yet reported
            return "d2h"
        elapsed = self._clock() - self.submit_s
        h2d, compute = self.expected
        if elapsed < h2d:
            return "h2d"
        if elapsed < h2d + compute:
            return "compute"
        return "d2h"

    @property
    def compute_start_s(self) -> float | None:
        if self.measured is not None:
            return self.measured[1]
        if self.phase in ("compute", "d2h"):
            return self.submit_s + self.expected[0]
        return None

    def __repr__(self) -> str:
        return (f"LiveBatch(id={self.batch_id}, slot={self.slot}, model={self.model}, "
                f"size={self.size}, state={self.state})")


class LiveView:
    """The read-only :class:`~strait_sim.policies.base.SystemView` of the live executor."""

    def __init__(self, executor: LiveExecutor) -> None:
        self._x = executor
        self.n_gpus = 1
        self.slots_per_gpu = executor.config.slots
        self.max_batch = executor.config.max_batch

    @property
    def now(self) -> float:
        return self._x.now

    def free_slots(self) -> list[tuple[int, int]]:
        return [(0, s) for s, b in enumerate(self._x.slots) if b is None]

    def running(self, gpu: int | None = None) -> list[LiveBatch]:
        if gpu not in (None, 0):
            return []
        return [b for b in self._x.slots if b is not None and b.state == "running"]

    def transfers_in_flight(self, gpu: int, direction: str) -> int:
        if gpu != 0:
            return 0
        return sum(1 for b in self.running() if b.phase == direction)


def perf_clock() -> float:
    """The host clock every live timestamp is taken on (backends use it too)."""
    return time.perf_counter()
