"""The backend contract shared by the profiler and the live executor.

A backend runs one model at one batch size on one of its streams: copy the inputs in
(host to device, from pinned host buffers allocated once), run the forward pass, copy the
outputs out, and time the three phases on the device. Work is submitted asynchronously;
a :class:`Job` tells when it is done and what it measured.

- ``torch-cuda``: one CUDA stream per slot, the forward captured as a CUDA graph per
  (model, batch), CUDA events around each phase, fp16 by default.
- ``torch-cpu``: the same contract on the CPU; each stream is a worker thread, so that
  the profiler and live mode run (and are tested) without a GPU.
- ``tensorrt``: loaded only where ``import tensorrt`` works.

Timestamps: ``PhaseTiming`` times are seconds on the host's ``time.perf_counter`` clock
(device timestamps are mapped onto it through a reference event), so that the live
executor can compute how long two batches overlapped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar


class BackendError(RuntimeError):
    """A batch failed on the device (CUDA error, out of memory, injected fault)."""


@dataclass(frozen=True, slots=True)
class PhaseTiming:
    """Device-timed phases of one submitted batch (host perf_counter seconds)."""

    h2d_start_s: float
    compute_start_s: float
    compute_end_s: float
    d2h_end_s: float

    @property
    def h2d_ms(self) -> float:
        return (self.compute_start_s - self.h2d_start_s) * 1e3

    @property
    def compute_ms(self) -> float:
        return (self.compute_end_s - self.compute_start_s) * 1e3

    @property
    def d2h_ms(self) -> float:
        return (self.d2h_end_s - self.compute_end_s) * 1e3


class Job(ABC):
    """Handle of one submitted batch."""

    @abstractmethod
    def done(self) -> bool:
        """True once the batch finished (or failed); never blocks."""

    @abstractmethod
    def result(self, timeout: float | None = None) -> PhaseTiming:
        """Block until done; return the timing or raise :class:`BackendError`."""


class Backend(ABC):
    """One device, ``streams`` independent queues of work on it."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""  # "cuda" or "cpu"
    # A backend that can tell when a job's compute and D2H phases start accepts
    # ``on_phase(job, phase, host_time_s)`` in submit(); the live view then shows observed
    # phases instead of estimates.
    reports_phases: ClassVar[bool] = False
    # A backend that can stop a submitted job has ``cancel(job) -> bool``.
    can_cancel: ClassVar[bool] = False

    @abstractmethod
    def device_info(self) -> dict:
        """Device, driver, clocks and software versions, for profile.json and reports."""

    @abstractmethod
    def prepare(self, model: str, batch: int) -> None:
        """Load ``model`` at ``batch`` (buffers, graph capture, warm-up). Idempotent."""

    @abstractmethod
    def submit(self, model: str, batch: int, stream: int,
               on_done: Callable[[Job], None] | None = None) -> Job:
        """Enqueue copy-in, forward, copy-out on ``stream``; return at once.

        ``on_done`` (optional) is called from a backend thread when the job ends, success
        or failure; the live executor uses it to wake its event loop.
        """

    @abstractmethod
    def synchronize(self) -> None:
        """Wait until every stream is idle."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release device memory and threads."""

    # -- optional extras used by the profiler (additive to the contract) ------------------

    def enqueue_delay(self, stream: int, seconds: float) -> None:
        """Make ``stream`` wait ``seconds`` before its next job starts (device-side where the
        device allows it), so that co-located batches start at controlled offsets."""
        raise NotImplementedError(f"{self.name} cannot delay a stream")

    def transfer(self, direction: str, nbytes: int, lane: int,
                 on_done: Callable[[Job], None] | None = None) -> Job:
        """Copy ``nbytes`` in ``direction`` ("h2d" or "d2h") from/to pinned host memory on
        copy lane ``lane`` (lanes are separate from compute streams); the job's result is a
        :class:`TransferTiming`."""
        raise NotImplementedError(f"{self.name} cannot time bare transfers")

    def align_copy_lanes(self, lanes: list[int], delay_s: float = 0.0) -> None:  # noqa: B027
        """Make the next transfer on each of ``lanes`` start together (after ``delay_s``),
        so that "concurrent" copies really overlap. Default: no alignment."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class TransferTiming:
    """Start and end of one bare copy (host perf_counter seconds)."""

    start_s: float
    end_s: float

    @property
    def ms(self) -> float:
        return (self.end_s - self.start_s) * 1e3
