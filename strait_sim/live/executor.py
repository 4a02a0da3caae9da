"""The live executor: the engine's event rules, on a real device and the wall clock.

It mirrors :class:`strait_sim.engine.simulator.Engine` call for call, so that one policy
object behaves the same under both drivers:

- requests are released at their arrival times (``perf_counter`` seconds since the run's
  start) from the same workload objects, numbered 0, 1, 2, ... in arrival order, and the
  policy's ``on_arrival`` is called for each;
- a ``Dispatch`` is checked exactly as the engine checks it (slot exists and is free, one
  model, not above --max-batch, requests not ended) and submitted to the backend on the
  stream of its slot, with the batch's item count as the backend's batch size;
- when the backend reports the job done, the request results use the device-timed
  phases (H2D start, compute start and end, D2H end, mapped to the host clock), the slot
  is freed and ``on_completion`` gets a :class:`CompletedBatch` whose ``co_runs`` are
  the overlaps of its measured compute interval with the other batches' on the device
  (batches still running count from their submission: an upper bound), so that online
  predictors learn live as they do in simulation;
- ``WakeAt`` timers, ``Drop``/``Reject`` and closed-loop sessions as in the engine.

Where the real device differs, the difference is kept, not hidden:

- a failed batch (CUDA error, out of memory, injected fault) marks its requests
  ``failed``; the policy is told through ``CompletedBatch(failed=True, error=...)``, and
  the run goes on;
- ``Preempt`` cannot abort work already queued on a device stream: the batch's requests go
  back to the policy at once (``on_preempted``), as in the engine, but its slot stays in
  the "reset" phase until the abandoned job has drained *and* ``cost_ms`` has passed;
- Ctrl-C (or ``KeyboardInterrupt`` from anywhere in the loop) stops the releases; jobs in
  flight are waited for up to ``drain_timeout_s`` (a second Ctrl-C abandons them) and
  recorded; the policy is not called again; every request released but not finished is
  marked ``failed`` and counted in ``unfinished``. Requests not yet released are not in
  the results.
- the executor's own costs are measured (:mod:`strait_sim.live.overheads`).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from strait_sim.engine.records import RequestRecords
from strait_sim.engine.rules import (
    ActionRouter,
    PolicyError,
    check_all_ended,
    check_dispatch,
    record_dispatch,
    record_unserved,
)
from strait_sim.engine.simulator import SimConfig
from strait_sim.engine.timeline import Timeline
from strait_sim.errors import UserError
from strait_sim.live.overheads import Overheads
from strait_sim.live.view import LiveBatch, LiveView, PhaseEstimates, perf_clock
from strait_sim.policies.base import (
    CompletedBatch,
    CoRun,
    Dispatch,
    Policy,
    PolicyContext,
    Preempt,
)
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.profiler.backend import Backend, BackendError
from strait_sim.profiler.jobs import FutureJob
from strait_sim.requests import (
    FAILED,
    LATE,
    ON_TIME,
    PENDING,
    Request,
    RequestChunk,
)
from strait_sim.workloads.base import Workload

_STOP = None  # put on the event queue by the SIGINT handler


class ResetSlot:
    """A slot whose batch was preempted: busy until its job drained and the reset passed."""

    __slots__ = ("batch_id", "gpu", "slot", "model", "size", "requests", "priority",
                 "dispatch_s", "predicted_ms", "state", "zombie", "until_s")

    phase = "reset"
    compute_start_s = None

    def __init__(self, zombie: LiveBatch, until_s: float) -> None:
        self.batch_id = -1
        self.gpu, self.slot, self.model, self.size = 0, zombie.slot, zombie.model, zombie.size
        self.requests = zombie.requests
        self.priority = zombie.priority
        self.dispatch_s = zombie.dispatch_s
        self.predicted_ms = None
        self.state = "reset"
        self.zombie = zombie
        self.until_s = until_s


@dataclass
class LiveOutcome:
    """What the executor hands back: the records, the measured facts, its overheads."""

    records: RequestRecords
    models: tuple[str, ...]
    end_s: float
    busy_s: float
    batches: int
    preemptions: int
    lost_work_s: float
    wall_s: float
    overheads: dict
    failed_batches: list[dict] = field(default_factory=list)
    interrupted: bool = False
    unfinished: int = 0
    abandoned_jobs: int = 0
    timeline: Timeline | None = None
    batch_log: list[tuple[str, int, float, float]] = field(default_factory=list)


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by at least one interval (busy time of the device)."""
    total, end = 0.0, -math.inf
    for s, e in sorted(intervals):
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


class LiveExecutor(ActionRouter):
    """One live run. Use :func:`strait_sim.live.runner.run_live`."""

    def __init__(self, profile: ProfileBundle, workload: Workload, policy: Policy,
                 config: SimConfig, backend: Backend, *, drain_timeout_s: float = 30.0,
                 handle_sigint: bool = True, clock: Callable[[], float] = perf_clock) -> None:
        if config.gpus != 1:
            raise UserError(f"live mode drives one device: --gpus must be 1, got {config.gpus}")
        streams = getattr(backend, "streams", config.slots)
        if streams < config.slots:
            raise UserError(f"the backend has {streams} stream(s) but --slots is {config.slots}")
        self.profile = profile
        self.workload = workload
        self.policy = policy
        self.config = config
        self.backend = backend
        self.drain_timeout_s = drain_timeout_s
        self.handle_sigint = handle_sigint
        self.clock = clock
        self.models = tuple(workload.models)
        for m in self.models:
            profile.require_model(m)
        self.model_index = {m: i for i, m in enumerate(self.models)}
        self.slots: list[LiveBatch | ResetSlot | None] = [None] * config.slots
        self.records = RequestRecords()
        self.view = LiveView(self)
        self.estimates = PhaseEstimates(profile, config.pcie)
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.timers: list[tuple[float, int, str, object]] = []
        self._seq = itertools.count()
        self._wakes: set[float] = set()
        self._arrivals: list[tuple] = []  # closed-loop heap: (t, seq, model, prio, dl, items)
        self._open: Iterator[tuple] | None = None
        self._next_open: tuple | None = None
        self.session = None
        self.inflight: set[LiveBatch] = set()  # submitted, completion not yet processed
        self.intervals: list[tuple[float, float, LiveBatch]] = []  # for co-run overlaps
        self.compute_intervals: list[tuple[float, float]] = []  # all, for busy time
        self.timeline = Timeline() if config.record_timeline else None
        self.stats = Overheads()
        self.failed_batches: list[dict] = []
        self.batch_log: list[tuple[str, int, float, float]] = []  # model, size, compute, co
        self.t0 = 0.0
        self.next_id = 0
        self.next_batch = 0
        self.ended = 0
        self.preemptions = 0
        self.lost_work_s = 0.0
        self.stop_requested = False
        self.interrupted = False
        self.unfinished = 0
        self.abandoned_jobs = 0

    @property
    def now(self) -> float:
        return self.clock() - self.t0

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> LiveOutcome:
        self.policy.bind(PolicyContext(
            profile=self.profile, models=self.models, n_gpus=1,
            slots_per_gpu=self.config.slots, max_batch=self.config.max_batch,
            seed=self.config.seed, extra={"mode": "live"}))
        self._warm_up()
        previous = self._install_sigint()
        self.t0 = self.clock()
        try:
            if self.workload.closed_loop:
                self.session = self.workload.session(self.profile, self.config.seed)
                self._schedule_chunk(self.session.first_requests())
            else:
                self._open = self._open_stream()
                self._next_open = next(self._open, None)
            self._loop()
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if self.interrupted:
            self._drain_after_stop()
        end_wall = self.now
        self._close_accounts()
        finish = self.records.full("finish_s")
        end_s = float(np.nanmax(finish)) if len(finish) and not np.isnan(finish).all() \
            else end_wall
        return LiveOutcome(
            records=self.records, models=self.models, end_s=end_s,
            busy_s=union_length(self.compute_intervals), batches=self.next_batch,
            preemptions=self.preemptions, lost_work_s=self.lost_work_s, wall_s=end_wall,
            overheads=self.stats.to_dict(end_wall), failed_batches=self.failed_batches,
            interrupted=self.interrupted, unfinished=self.unfinished,
            abandoned_jobs=self.abandoned_jobs, timeline=self.timeline,
            batch_log=self.batch_log)

    def _warm_up(self) -> None:
        """Pay one-off costs before the clock starts, not in the first request's latency:
        the records' first column chunk (tens of MB, ~50 ms to fill) and the profile
        look-ups behind the view's phase estimates."""
        self.records.ensure(1)
        self.records.count = 0
        for m in self.models:
            for size in range(1, self.config.max_batch + 1):
                self.estimates.h2d_compute_s(m, size)

    def _install_sigint(self):
        if not self.handle_sigint or threading.current_thread() is not threading.main_thread():
            return None

        def on_sigint(signum, frame) -> None:
            if self.stop_requested:  # second Ctrl-C: stop waiting for jobs in flight
                raise KeyboardInterrupt
            self.stop_requested = True
            self.events.put(_STOP)

        return signal.signal(signal.SIGINT, on_sigint)

    def _loop(self) -> None:
        while True:
            if self.stop_requested:
                raise KeyboardInterrupt
            self._take_events(0.0)
            t_arr = self._next_arrival_time()
            while t_arr is not None and t_arr <= self.now and not self.stop_requested:
                self._release_next()
                t_arr = self._next_arrival_time()
            while self.timers and self.timers[0][0] <= self.now and not self.stop_requested:
                self._fire_timer()
            t_arr = self._next_arrival_time()
            t_tim = self.timers[0][0] if self.timers else None
            if t_arr is None and t_tim is None and not any(self.slots) and not self.inflight:
                return
            due = [t for t in (t_arr, t_tim) if t is not None]
            timeout = max(min(due) - self.now, 0.0) if due else None
            self._take_events(timeout)

    # -- arrivals ------------------------------------------------------------------------------
    def _open_stream(self) -> Iterator[tuple]:
        for chunk in self.workload.chunks(self.profile, self.config.seed):
            names = chunk.models
            arr, mod = chunk.arrival_s.tolist(), chunk.model.tolist()
            pri, dl, it = chunk.priority.tolist(), chunk.deadline_s.tolist(), chunk.items.tolist()
            for i in range(len(arr)):
                yield arr[i], names[mod[i]], pri[i], dl[i], it[i]

    def _schedule_chunk(self, chunk: RequestChunk | None) -> None:
        if chunk is None or len(chunk) == 0:
            return
        for i in range(len(chunk)):
            heapq.heappush(self._arrivals, (
                float(chunk.arrival_s[i]), next(self._seq), chunk.models[int(chunk.model[i])],
                int(chunk.priority[i]), float(chunk.deadline_s[i]), int(chunk.items[i])))

    def _next_arrival_time(self) -> float | None:
        if self._next_open is not None:
            return self._next_open[0]
        return self._arrivals[0][0] if self._arrivals else None

    def _release_next(self) -> None:
        if self._next_open is not None:
            t, model, prio, deadline, items = self._next_open
            self._next_open = next(self._open, None)
        else:
            t, _, model, prio, deadline, items = heapq.heappop(self._arrivals)
        start = self.clock()
        rid = self.next_id
        self.next_id += 1
        rec = self.records
        rec.ensure(rid + 1)
        rec.set("arrival_s", rid, t)
        rec.set("deadline_s", rid, deadline)
        rec.set("model", rid, self.model_index[model])
        rec.set("priority", rid, prio)
        rec.set("items", rid, items)
        self.stats.release_lag_ms.append((start - self.t0 - t) * 1e3)
        self._call("arrival", self.policy.on_arrival, Request(rid, model, prio, t, deadline,
                                                                items))
        self.stats.event_ms.append((self.clock() - start) * 1e3)

    def _call(self, hook: str, fn: Callable, *args) -> None:
        t = self.clock()
        actions = fn(*args, self.view)
        self.stats.policy_ms[hook].append((self.clock() - t) * 1e3)
        if actions:
            self._apply(actions)

    # -- actions (the engine's rules) --------------------------------------------------------
    def _dispatch(self, a: Dispatch) -> None:
        gpu, slot, reqs = a.gpu, a.slot, a.requests
        busy = gpu == 0 and 0 <= slot < self.config.slots and self.slots[slot] is not None
        model, size = check_dispatch(self.policy, a, gpus=1, slots=self.config.slots,
                                     slot_busy=busy, max_batch=self.config.max_batch)
        now = self.now
        record_dispatch(self.records, self.policy, reqs, now=now, gpu=0, slot=slot,
                        size=size, predicted_ms=a.predicted_ms)
        b = LiveBatch(self.next_batch, 0, slot, model, size, tuple(reqs), now, a.predicted_ms,
                      self.estimates.h2d_compute_s(model, size), lambda: self.now)
        self.next_batch += 1
        self.slots[slot] = b
        b.submit_s = self.now
        try:
            b.job = self.backend.submit(model, size, slot, on_done=partial(self._job_done, b))
        except BackendError as exc:  # reported through the queue, as an asynchronous failure
            b.job = FutureJob(model, size, slot)
            b.job.set_error(exc)
            self.events.put((b, b.job, None))
        self.inflight.add(b)

    def _job_done(self, b: LiveBatch, job) -> None:
        """Backend thread: hand the finished job to the event loop."""
        self.events.put((b, job, None))

    def _end_unserved(self, reqs: Sequence[Request], status: int) -> None:
        now = self.now
        record_unserved(self.records, self.policy, reqs, status=status, now=now)
        self.ended += len(reqs)
        self._next_of_session(reqs, now)

    def _wake_at(self, time_s: float) -> None:
        if time_s in self._wakes:
            return
        self._wakes.add(time_s)
        heapq.heappush(self.timers, (time_s, next(self._seq), "wake", time_s))

    def _fire_timer(self) -> None:
        due, _, kind, payload = heapq.heappop(self.timers)
        start = self.clock()
        self.stats.timer_lag_ms.append((start - self.t0 - due) * 1e3)
        if kind == "wake":
            self._wakes.discard(payload)
            self._call("timer", self.policy.on_timer)
        else:
            self._maybe_end_reset(payload)
        self.stats.event_ms.append((self.clock() - start) * 1e3)

    def _preempt(self, a: Preempt) -> None:
        b = self.slots[a.slot] if a.gpu == 0 and 0 <= a.slot < self.config.slots else None
        if b is None or b.state != "running":
            raise PolicyError(f"policy {self.policy.name} preempted idle slot "
                              f"({a.gpu}, {a.slot})")
        now = self.now
        self.preemptions += 1
        self.lost_work_s += now - b.dispatch_s
        rec = self.records
        for r in b.requests:
            rec.set("start_s", r.id, math.nan)
            rec.set("gpu", r.id, -1)
            rec.set("slot", r.id, -1)
            rec.set("predicted_ms", r.id, math.nan)
            rec.set("preemptions", r.id, rec.get("preemptions", r.id) + 1)
        b.state = "preempted"
        placeholder = ResetSlot(b, now + a.cost_ms / 1e3)
        self.slots[b.slot] = placeholder
        if a.cost_ms > 0:
            heapq.heappush(self.timers, (placeholder.until_s, next(self._seq), "reset",
                                         placeholder))
        self._call("preempted", self.policy.on_preempted, b)

    def _maybe_end_reset(self, p: ResetSlot) -> None:
        if self.slots[p.slot] is not p:
            return
        if p.zombie in self.inflight or self.now < p.until_s:
            return
        if self.timeline is not None:
            self.timeline.add(0, f"slot {p.slot}", "reset", p.dispatch_s, self.now, -1)
        self.slots[p.slot] = None
        self._call("timer", self.policy.on_timer)

    # -- completions ---------------------------------------------------------------------------
    def _take_events(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` (None: until one comes) for events; handle all there are."""
        items = []
        try:
            if timeout is None:
                items.append(self.events.get())
            elif timeout > 0:
                items.append(self.events.get(timeout=timeout))
        except queue.Empty:
            pass
        while True:
            try:
                items.append(self.events.get_nowait())
            except queue.Empty:
                break
        if not items:
            return
        handled = self.clock()
        done = []
        for item in items:
            if item is _STOP:
                self.stop_requested = True
                continue
            b, job, exc = item
            if exc is None:
                try:
                    t = job.result(0)
                except BackendError as err:
                    exc = err
                else:
                    b.measured = (t.h2d_start_s - self.t0, t.compute_start_s - self.t0,
                                  t.compute_end_s - self.t0, t.d2h_end_s - self.t0)
                    self.intervals.append((b.measured[1], b.measured[2], b))
                    self.compute_intervals.append((b.measured[1], b.measured[2]))
            done.append((b, exc))
        # All intervals of this group are known before any co-run is computed.
        done.sort(key=lambda d: d[0].measured[3] if d[0].measured else handled - self.t0)
        for b, exc in done:
            self._complete(b, exc, handled)
        self._prune_intervals()

    def _complete(self, b: LiveBatch, exc: BaseException | None, handled: float) -> None:
        start = self.clock()
        self.inflight.discard(b)
        if b.state == "preempted":  # the abandoned job of a preempted batch drained
            p = self.slots[b.slot]
            if isinstance(p, ResetSlot) and p.zombie is b:
                self._maybe_end_reset(p)
            return
        self.slots[b.slot] = None
        if exc is not None:
            done = self._record_failure(b, exc)
        else:
            done = self._record_success(b)
            self.stats.completion_lag_ms.append((handled - self.t0 - b.measured[3]) * 1e3)
        self._call("completion", self.policy.on_completion, done)
        self._next_of_session(b.requests, done.finish_s)
        self.stats.event_ms.append((self.clock() - start) * 1e3)

    def _record_success(self, b: LiveBatch) -> CompletedBatch:
        h2d_s, cs, ce, fe = b.measured
        b.state = "done"
        self.stats.dispatch_delay_ms.append((h2d_s - b.dispatch_s) * 1e3)
        rec = self.records
        compute_ms = (ce - cs) * 1e3
        for r in b.requests:
            rec.set("finish_s", r.id, fe)
            rec.set("compute_ms", r.id, compute_ms)
            rec.set("status", r.id, ON_TIME if fe <= r.deadline_s else LATE)
        self.ended += len(b.requests)
        if self.timeline is not None:
            label = f"{b.model} x{b.size}"
            self.timeline.add(0, "h2d", label, h2d_s, cs, b.batch_id)
            self.timeline.add(0, f"slot {b.slot}", label, cs, ce, b.batch_id)
            self.timeline.add(0, "d2h", label, ce, fe, b.batch_id)
        co_runs = self._co_runs(b) if not self.interrupted else ()
        self.batch_log.append((b.model, b.size, compute_ms,
                               sum(c.overlap_ms for c in co_runs)))
        return CompletedBatch(
            batch_id=b.batch_id, gpu=0, slot=b.slot, model=b.model, size=b.size,
            requests=b.requests, dispatch_s=b.dispatch_s, compute_start_s=cs,
            compute_end_s=ce, finish_s=fe, predicted_ms=b.predicted_ms, co_runs=co_runs)

    def _record_failure(self, b: LiveBatch, exc: BaseException) -> CompletedBatch:
        now = self.now
        b.state = "done"
        rec = self.records
        for r in b.requests:
            rec.set("finish_s", r.id, now)
            rec.set("status", r.id, FAILED)
        self.ended += len(b.requests)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.failed_batches.append({"batch_id": b.batch_id, "model": b.model, "size": b.size,
                                    "slot": b.slot, "time_s": now, "error": message,
                                    "requests": [r.id for r in b.requests]})
        if self.timeline is not None:
            self.timeline.add(0, f"slot {b.slot}", f"FAILED {b.model} x{b.size}",
                              b.dispatch_s, now, b.batch_id)
        return CompletedBatch(
            batch_id=b.batch_id, gpu=0, slot=b.slot, model=b.model, size=b.size,
            requests=b.requests, dispatch_s=b.dispatch_s, compute_start_s=now,
            compute_end_s=now, finish_s=now, predicted_ms=b.predicted_ms, failed=True,
            error=message)

    def _co_runs(self, b: LiveBatch) -> tuple[CoRun, ...]:
        """Overlaps of ``b``'s measured compute with every other batch on the device."""
        cs, ce = b.measured[1], b.measured[2]
        out = []
        for ocs, oce, other in self.intervals:
            if other is b:
                continue
            overlap = min(ce, oce) - max(cs, ocs)
            if overlap > 0:
                out.append(CoRun(other.model, other.size, overlap * 1e3))
        for other in self.inflight:
            if other is b or other.measured is not None:
                continue
            overlap = ce - max(cs, other.submit_s)  # still running: from its submission
            if overlap > 0:
                out.append(CoRun(other.model, other.size, overlap * 1e3))
        return tuple(out)

    def _prune_intervals(self) -> None:
        oldest = min((b.submit_s for b in self.inflight), default=self.now)
        self.intervals = [iv for iv in self.intervals if iv[1] >= oldest]

    def _next_of_session(self, reqs: Sequence[Request], end_s: float) -> None:
        if self.session is None or self.stop_requested:
            return
        for r in reqs:
            self._schedule_chunk(self.session.next_after(r, end_s))

    # -- stopping --------------------------------------------------------------------------------
    def _drain_after_stop(self) -> None:
        """After Ctrl-C: record the jobs still in flight as they end, without the policy.

        Jobs are polled (``done()``) rather than taken from the event queue, whose events
        for some of them may have been consumed when the interruption came."""
        limit = self.clock() + self.drain_timeout_s
        try:
            while self.inflight:
                for b in [b for b in self.inflight if b.job.done()]:
                    self.inflight.discard(b)
                    if b.state != "running":
                        continue
                    if b.measured is None:
                        try:
                            t = b.job.result(0)
                        except BackendError as err:
                            self._record_failure(b, err)
                            self.slots[b.slot] = None
                            continue
                        b.measured = (t.h2d_start_s - self.t0, t.compute_start_s - self.t0,
                                      t.compute_end_s - self.t0, t.d2h_end_s - self.t0)
                        self.compute_intervals.append((b.measured[1], b.measured[2]))
                    self._record_success(b)
                    self.slots[b.slot] = None
                remaining = limit - self.clock()
                if not self.inflight or remaining <= 0:
                    break
                with contextlib.suppress(queue.Empty):  # a job's end wakes us up
                    self.events.get(timeout=min(remaining, 0.05))
        except KeyboardInterrupt:
            pass
        self.abandoned_jobs = len(self.inflight)

    def _close_accounts(self) -> None:
        """Every request ends exactly once: check it, or (interrupted) end the rest."""
        if self.interrupted:
            now = self.now
            rec = self.records
            for rid in range(self.records.count):
                if rec.get("status", rid) == PENDING:
                    rec.set("status", rid, FAILED)
                    rec.set("finish_s", rid, now)
                    self.unfinished += 1
            self.ended += self.unfinished
            return
        check_all_ended(self.policy, self.records, self.ended)

