"""A thread-safe :class:`Job` that a backend thread completes, shared by all backends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from strait_sim.profiler.backend import BackendError, Job


class FutureJob(Job):
    """Completed once, from any thread, with a timing or an error.

    ``on_done`` runs in the completing thread after the result is visible; an exception in
    it is kept (``callback_error``) rather than killing the backend's worker thread.
    """

    def __init__(self, model: str, batch: int, stream: int,
                 on_done: Callable[[Job], None] | None = None) -> None:
        self.model = model
        self.batch = batch
        self.stream = stream
        self._on_done = on_done
        self._event = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self.callback_error: BaseException | None = None

    def done(self) -> bool:
        return self._event.is_set()

    def result(self, timeout: float | None = None) -> Any:
        if not self._event.wait(timeout):
            raise TimeoutError(f"{self.model} batch {self.batch} on stream {self.stream} "
                               f"not done after {timeout} s")
        if self._error is not None:
            if isinstance(self._error, BackendError):
                raise self._error
            raise BackendError(f"{type(self._error).__name__}: {self._error}") from self._error
        return self._value

    @property
    def error(self) -> BaseException | None:
        return self._error if self._event.is_set() else None

    def set_result(self, value: Any) -> None:
        self._value = value
        self._finish()

    def set_error(self, error: BaseException) -> None:
        self._error = error
        self._finish()

    def _finish(self) -> None:
        self._event.set()
        if self._on_done is not None:
            try:
                self._on_done(self)
            except Exception as exc:  # never let a callback kill a backend thread
                self.callback_error = exc

    def __repr__(self) -> str:
        state = "failed" if self._error else ("done" if self.done() else "pending")
        return f"<Job {self.model} b={self.batch} stream={self.stream} {state}>"
