"""Failure injection, so that callers' error paths are tested without a broken device.

:class:`FaultInjectingBackend` wraps any backend. A rule decides, per submitted batch,
whether it fails; failed jobs complete asynchronously (from a helper thread, as a real
device failure would) with :class:`BackendError`, and ``on_done`` is still called. The
live executor's tests use it to check that "an injected backend failure marks the right
requests failed"; the profiler's tests use ``interrupt_after`` to simulate Ctrl-C.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from strait_sim.profiler.backend import Backend, BackendError, Job
from strait_sim.profiler.jobs import FutureJob


@dataclass(frozen=True)
class SubmitInfo:
    """What a failure rule sees: the n-th submit (0-based) and its arguments."""

    index: int
    model: str
    batch: int
    stream: int


FailRule = Callable[[SubmitInfo], bool]


def fail_models(*models: str) -> FailRule:
    """Rule: every batch of these models fails."""
    names = set(models)
    return lambda info: info.model in names


def fail_indices(*indices: int) -> FailRule:
    """Rule: the submits with these 0-based indices fail."""
    wanted = set(indices)
    return lambda info: info.index in wanted


class FaultInjectingBackend(Backend):
    """Delegates to ``inner``; batches matching ``fail_on`` fail with BackendError.

    ``interrupt_after=n`` raises ``KeyboardInterrupt`` from the (n+1)-th submit, as if the
    user pressed Ctrl-C there.
    """

    def __init__(self, inner: Backend, fail_on: FailRule | None = None, *,
                 message: str = "injected fault", fail_delay_s: float = 0.0,
                 interrupt_after: int | None = None) -> None:
        self.inner = inner
        self.fail_on = fail_on or (lambda info: False)
        self.message = message
        self.fail_delay_s = fail_delay_s
        self.interrupt_after = interrupt_after
        self.submits = 0
        self.failed: list[SubmitInfo] = []
        self._lock = threading.Lock()
        self.name = inner.name  # type: ignore[misc]
        self.kind = inner.kind  # type: ignore[misc]

    def __getattr__(self, attr: str) -> object:  # streams, precision, spec(), params() ...
        return getattr(self.inner, attr)

    def device_info(self) -> dict:
        return self.inner.device_info()

    def prepare(self, model: str, batch: int) -> None:
        self.inner.prepare(model, batch)

    @property
    def reports_phases(self) -> bool:  # type: ignore[override]
        return getattr(self.inner, "reports_phases", False)

    def submit(self, model: str, batch: int, stream: int,
               on_done: Callable[[Job], None] | None = None,
               on_phase: Callable[[Job, str, float], None] | None = None) -> Job:
        with self._lock:
            info = SubmitInfo(self.submits, model, batch, stream)
            self.submits += 1
        if self.interrupt_after is not None and info.index >= self.interrupt_after:
            raise KeyboardInterrupt
        if not self.fail_on(info):
            if on_phase is not None:
                return self.inner.submit(model, batch, stream, on_done, on_phase=on_phase)
            return self.inner.submit(model, batch, stream, on_done)
        self.failed.append(info)
        job = FutureJob(model, batch, stream, on_done)
        err = BackendError(f"{self.message}: {model} batch {batch} on stream {stream}")
        timer = threading.Timer(self.fail_delay_s, job.set_error, args=(err,))
        timer.daemon = True
        timer.start()
        return job

    def synchronize(self) -> None:
        self.inner.synchronize()

    def close(self) -> None:
        self.inner.close()

    def enqueue_delay(self, stream: int, seconds: float) -> None:
        self.inner.enqueue_delay(stream, seconds)

    def align_copy_lanes(self, lanes: list[int], delay_s: float = 0.0) -> None:
        self.inner.align_copy_lanes(lanes, delay_s)

    def transfer(self, direction: str, nbytes: int, lane: int,
                 on_done: Callable[[Job], None] | None = None) -> Job:
        return self.inner.transfer(direction, nbytes, lane, on_done)
