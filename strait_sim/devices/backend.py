"""The live device: a profiler backend's streams under the driver's wall clock.

:class:`BackendDevice` implements the driver's device contract on a real backend
(torch-cuda, torch-cpu, or any :class:`~strait_sim.profiler.backend.Backend`). Slot k is
backend stream k. A dispatched batch is submitted at once; the backend's threads post
"phase started" and "job done" into the clock's inbox, so the driver only ever runs on
its own thread.

What a real device does differently from the fluid model is kept, not hidden:

- Phases: a backend that reports them (``reports_phases``) gives observed phase changes;
  otherwise the view shows a phase *estimated* from the profile's medians (the time
  since submission against expected H2D and compute times).
- Co-runs: a completed batch's co-runners and overlaps come from the measured compute
  intervals; a co-runner still in flight counts from its observed compute start (or its
  submission, an upper bound, where phases are not reported) to its observed compute end
  if it is already copying its results back (else to this batch's end).
- Preemption: work already queued on a stream cannot be stopped (unless the backend can
  ``cancel``): the slot stays in "reset" until the abandoned job has drained; a
  kernel-granularity restore is not possible live, so the batch restarts.
- Failures (CUDA error, out of memory, injected fault) end the batch as ``failed``.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import queue
import time
from functools import partial

from strait_sim.devices.phase_estimates import PhaseEstimates
from strait_sim.driver.batch import Batch
from strait_sim.policies.base import CoRun
from strait_sim.profiler.backend import Backend, BackendError
from strait_sim.profiler.jobs import FutureJob


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by at least one interval (busy time of the device)."""
    total, end = 0.0, -math.inf
    for s, e in sorted(intervals):
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


class BackendDevice:
    """The driver's device on a real backend, one stream per slot."""

    def __init__(self, clock, backend: Backend, estimates: PhaseEstimates) -> None:
        self.clock = clock
        self.backend = backend
        self.estimates = estimates
        self.can_cancel = bool(getattr(backend, "can_cancel", False))
        # A subclass may override submit() without on_phase: then phases are estimated.
        self.reports_phases = bool(getattr(backend, "reports_phases", False)) and \
            "on_phase" in inspect.signature(backend.submit).parameters
        self.driver = None
        self.inflight: dict[Batch, None] = {}  # submitted, completion not taken; in order
        self.compute_start: dict[int, float] = {}  # batch id -> observed compute start
        self.intervals: list[tuple[float, float, Batch]] = []  # done, for co-run overlaps
        self.compute_intervals: list[tuple[float, float]] = []  # all, for busy time
        self.failed_batches: list[dict] = []
        self.batch_log: list[tuple[str, int, float, float]] = []  # model, size, compute, co
        self.dispatch_delay_ms: list[float] = []
        self.completion_lag_ms: list[float] = []

    def bind(self, driver) -> None:
        self.driver = driver

    # -- submitting ----------------------------------------------------------------------
    def start(self, batch: Batch) -> None:
        clock = self.clock
        batch._submit_s = clock._now
        if not self.reports_phases:
            batch._phase_fn = self._estimated_phase
        done = partial(self._post_done, batch)
        try:
            if self.reports_phases:
                batch._job = self.backend.submit(batch._model, batch._size, batch._slot,
                                                 on_done=done,
                                                 on_phase=partial(self._post_phase, batch))
            else:
                batch._job = self.backend.submit(batch._model, batch._size, batch._slot,
                                                 on_done=done)
        except BackendError as exc:  # reported through the inbox, as an asynchronous failure
            job = FutureJob(batch._model, batch._size, batch._slot)
            batch._job = job
            job.set_error(exc)
            clock.post(self._job_done, (batch, job))
        # In flight only once submitted: an interruption inside submit() leaves nothing
        # for the drain to wait for (the driver marks the batch's requests failed).
        self.inflight[batch] = None
        clock.outstanding += 1

    def _post_done(self, batch: Batch, job) -> None:  # a backend thread
        self.clock.post(self._job_done, (batch, job))

    def _post_phase(self, batch: Batch, job, phase: str, host_s: float) -> None:  # ditto
        self.clock.post(self._phase_seen, (batch, phase, host_s - self.clock.t0))

    def _phase_seen(self, item: tuple) -> None:
        batch, phase, t = item
        if batch._phase in ("reset", "done"):
            return
        batch._phase = phase
        if phase == "compute":
            batch._compute_start_s = t
            self.compute_start[batch._batch_id] = t
        elif phase == "d2h":  # its compute ended: a batch ending later overlaps it only so far
            batch._compute_end_s = t

    def _estimated_phase(self, batch: Batch) -> str:
        elapsed = self.clock._now - batch._submit_s
        h2d, compute = self.estimates.h2d_compute_s(batch._model, batch._size)
        if elapsed < h2d:
            return "h2d"
        if elapsed < h2d + compute:
            if batch._compute_start_s is None:
                batch._compute_start_s = batch._submit_s + h2d
            return "compute"
        return "d2h"

    # -- completions ---------------------------------------------------------------------
    def _job_done(self, item: tuple) -> None:
        batch, job = item
        if batch not in self.inflight:
            return
        self.inflight.pop(batch, None)
        self.clock.outstanding -= 1
        self.compute_start.pop(batch._batch_id, None)
        if batch._phase == "reset":  # the abandoned job of a preempted batch drained
            self.driver.slot_drained(batch)
            return
        try:
            t = job.result(0)
        except (BackendError, TimeoutError) as err:
            self._fail(batch, err)
            return
        self._finish(batch, t)

    def _finish(self, batch: Batch, t, *, tell_policy: bool = True) -> None:
        t0 = self.clock.t0
        h2d_s, cs, ce, fe = (t.h2d_start_s - t0, t.compute_start_s - t0,
                             t.compute_end_s - t0, t.d2h_end_s - t0)
        self.dispatch_delay_ms.append((h2d_s - batch._dispatch_s) * 1e3)
        self.completion_lag_ms.append((self.clock._now - fe) * 1e3)
        batch._submit_s = h2d_s
        batch._compute_start_s, batch._compute_end_s, batch._finish_s = cs, ce, fe
        self.intervals.append((cs, ce, batch))
        self.compute_intervals.append((cs, ce))
        co_runs = self._co_runs(batch) if tell_policy else ()
        self.batch_log.append((batch._model, batch._size, (ce - cs) * 1e3,
                               sum(c.overlap_ms for c in co_runs)))
        self._prune()
        self.driver.batch_done(batch, co_runs)

    def _fail(self, batch: Batch, exc: BaseException) -> None:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.failed_batches.append({
            "batch_id": batch._batch_id, "model": batch._model, "size": batch._size,
            "slot": batch._slot, "time_s": self.clock._now, "error": message,
            "requests": [r.id for r in batch._requests]})
        self.driver.batch_failed(batch, message)

    def _co_runs(self, b: Batch) -> tuple[CoRun, ...]:
        """Overlaps of ``b``'s measured compute with every other batch on the device."""
        cs, ce = b._compute_start_s, b._compute_end_s
        out = []  # (co-runner's compute start, CoRun): ordered as the simulation orders them
        for ocs, oce, other in self.intervals:
            if other is b:
                continue
            overlap = min(ce, oce) - max(cs, ocs)
            if overlap > 0:
                out.append((ocs, CoRun(other._model, other._size, overlap * 1e3)))
        for other in self.inflight:
            if other is b or other._phase == "reset":
                continue
            start = self.compute_start.get(other._batch_id)
            if start is None:
                if self.reports_phases:
                    continue  # not computing yet
                start = other._submit_s  # unobserved: from its submission, an upper bound
            end = other._compute_end_s if other._phase == "d2h" else None
            overlap = (ce if end is None else min(ce, end)) - max(cs, start)
            if overlap > 0:
                out.append((start, CoRun(other._model, other._size, overlap * 1e3)))
        out.sort(key=lambda item: item[0])
        return tuple(c for _, c in out)

    def _prune(self) -> None:
        oldest = min((b._submit_s for b in self.inflight), default=self.clock._now)
        self.intervals = [iv for iv in self.intervals if iv[1] >= oldest]

    # -- preemption ----------------------------------------------------------------------
    def cancel(self, batch: Batch, restore: str) -> tuple[bool, float, float]:
        """A real stream cannot stop queued work: the slot drains (unless cancellable)."""
        job = batch._job
        if self.can_cancel and job is not None and self.backend.cancel(job):
            self.inflight.pop(batch, None)
            self.clock.outstanding -= 1
            self.compute_start.pop(batch._batch_id, None)
            return True, 0.0, 0.0
        return False, 0.0, 0.0

    # -- stopping early ------------------------------------------------------------------
    def drain(self, timeout_s: float) -> int:
        """After Ctrl-C: record the jobs still in flight as they end, without the policy
        (the driver is no longer active). Jobs are polled (``done()``): some of their
        inbox items may have been consumed when the interruption came. Returns how many
        were abandoned (still running after ``timeout_s``, or a second Ctrl-C)."""
        limit = time.perf_counter() + timeout_s
        try:
            while self.inflight:
                for b in [b for b in self.inflight if b._job is not None and b._job.done()]:
                    self.inflight.pop(b, None)
                    self.clock.outstanding -= 1
                    if b._phase == "reset":
                        continue
                    try:
                        t = b._job.result(0)
                    except BackendError as err:
                        self._fail(b, err)
                        continue
                    self._finish(b, t, tell_policy=False)
                remaining = limit - time.perf_counter()
                if not self.inflight or remaining <= 0:
                    break
                with contextlib.suppress(queue.Empty):  # a job's end wakes us up
                    self.clock.inbox.get(timeout=min(remaining, 0.05))
        except KeyboardInterrupt:
            pass
        return len(self.inflight)

    # -- what the view shows -------------------------------------------------------------
    def transfers_in_flight(self, gpu: int, direction: str) -> int:
        if gpu != 0:
            return 0
        return sum(1 for b in self.inflight if b._phase != "reset" and b.phase == direction)

    def busy_s(self) -> list[float]:
        return [union_length(self.compute_intervals)]
