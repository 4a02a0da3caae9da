"""The one driver: slots, phases, timers, request states and records, for both clocks.

A run is a policy, a workload, a device and a clock. The driver releases arrivals to
the policy, applies the policy's actions (checking each against the request state
machine and the dispatch rules at once), hands dispatched batches to the device, and
records what the device reports back. Nothing in it knows whether time is virtual or
real, or whether the device is the fluid truth model or a real backend:

    policy <-> DriverView <-> Driver --> Device: FluidDevice (truth) | BackendDevice (streams)
                                 |
                                 +-- clock: VirtualClock (SimPy) | WallClock (perf_counter)

Device contract (both implementations, see :mod:`strait_sim.devices`):

- ``bind(driver)``; ``start(batch)``: run H2D, compute, D2H; set ``batch._phase``,
  ``_compute_start_s``, ``_compute_end_s``, ``_finish_s`` as they become known, then call
  ``driver.batch_done(batch, co_runs)`` or ``driver.batch_failed(batch, message)``;
- ``cancel(batch, restore) -> (stopped_now, kept_fraction, kept_s)``: preemption; a device
  that cannot stop work already queued returns ``stopped_now=False`` and later calls
  ``driver.slot_drained(batch)``;
- ``transfers_in_flight(gpu, direction)``, ``busy_s() -> list per GPU``.

Queues of waiting requests belong to the policy; everything else belongs here.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from strait_sim.driver.arrivals import Arrivals
from strait_sim.driver.batch import Batch
from strait_sim.driver.config import SimConfig
from strait_sim.driver.rules import check_dispatch
from strait_sim.driver.states import (
    ENDED,
    IN_FLIGHT,
    NOT_ARRIVED,
    STATE_NAMES,
    WAITING,
    PolicyError,
    RequestStates,
)
from strait_sim.driver.view import DriverView
from strait_sim.engine.records import CHUNK_BITS, MASK, RequestRecords
from strait_sim.engine.timeline import Timeline
from strait_sim.policies.base import (
    CompletedBatch,
    Dispatch,
    Drop,
    Policy,
    PolicyContext,
    Preempt,
    Reject,
    WakeAt,
)
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.requests import DROPPED, FAILED, LATE, ON_TIME, REJECTED, Request
from strait_sim.workloads.base import Workload

RESTORE_MODES = ("restart", "kernel")


@dataclass
class RunOutcome:
    """What a run hands back, simulated or live: the records and the run's facts."""

    records: RequestRecords
    models: tuple[str, ...]
    end_s: float
    busy_s: list[float]
    batches: int
    preemptions: int
    lost_work_s: float
    timeline: Timeline | None = None
    extra: dict = field(default_factory=dict)


def open_workload(workload: Workload, profile: ProfileBundle, seed: int, arrivals: Arrivals):
    """Open the run's workload into ``arrivals``; return its closed-loop session, if any."""
    if workload.closed_loop:
        session = workload.session(profile, seed)
        arrivals.push(session.first_requests())
        return session
    arrivals.open_stream(iter(workload.chunks(profile, seed)))
    return None


def check_policy_empty(policy: Policy, where: str = "") -> None:
    """At the end of a run a policy holds no request."""
    waiting = policy.waiting()
    if waiting:
        raise PolicyError(f"policy {policy.name}{where} still holds {waiting} request(s) at "
                          f"the end of the run (rule: every request ends exactly once)")


def check_states_ended(states: RequestStates, count: int, who: str = "") -> None:
    """At the end of a run every request has ended; name the first that did not."""
    first = states.first_not_ended(count)
    if first is not None:
        rid, state = first
        raise PolicyError(f"{who}request {rid} never ended: it is {STATE_NAMES[state]} "
                          f"(rule: every request ends exactly once)")


class Driver:
    """One run of a policy over a device and a clock."""

    def __init__(self, clock, device, profile: ProfileBundle, workload: Workload,
                 policy: Policy, config: SimConfig, *, mode: str = "sim",
                 progress: Callable[[int, float], None] | None = None,
                 cluster=None, node: int = 0) -> None:
        self.clock = clock
        self.device = device
        self.profile = profile
        self.workload = workload
        self.policy = policy
        self.config = config
        self.mode = mode
        self.progress = progress
        self.models = tuple(workload.models)
        for m in self.models:
            profile.require_model(m)
        self.slots: list[list[Batch | None]] = [[None] * config.slots
                                                for _ in range(config.gpus)]
        # idle (gpu, slot) pairs, kept sorted: the view hands out copies without a scan
        self.free: list[tuple[int, int]] = [(g, k) for g in range(config.gpus)
                                            for k in range(config.slots)]
        if cluster is None:  # a single node: this driver owns the run's records
            self.records = RequestRecords()
            self.states = RequestStates()
            self.arrivals = Arrivals(self.records, self.models, config.max_batch,
                                     self._deliver)
            self.timeline = Timeline() if config.record_timeline else None
        else:  # one node of a cluster (driver/cluster.py): records shared by all nodes
            self.records = cluster.records
            self.states = cluster.states
            self.arrivals = cluster.arrivals
            self.timeline = cluster.timeline
        self.node = node
        self._cluster = cluster
        self.gpu_offset = node * config.gpus  # this node's GPUs in the run's numbering
        self.next_batch = 0
        self.ended = 0
        self.preemptions = 0
        self.lost_work_s = 0.0
        self.session = None
        self.active = True  # False once a live run is interrupted: the policy is not called
        self._wakes: set[float] = set()
        self._credit: dict[int, tuple[int, float, int]] = {}  # request -> (batch, kept, n)
        # batch id -> [cost pending, drain pending, preempted at (s)]
        self._resets: dict[int, list] = {}
        # Hot-path constants and the records' column lists, looked up once (the lists are
        # the records' own: chunks are appended to them, never replaced during a run).
        self._n_gpus, self._n_slots, self._max_batch = config.gpus, config.slots, \
            config.max_batch
        cols = self.records.cols
        self._dispatch_cols = (cols["start_s"], cols["gpu"], cols["slot"],
                               cols["predicted_ms"], cols["batch_size"])
        self._done_cols = (cols["finish_s"], cols["compute_ms"], cols["status"])
        self.view = DriverView(self)
        device.bind(self)

    # -- the run -----------------------------------------------------------------------------
    def context(self) -> PolicyContext:
        return PolicyContext(profile=self.profile, models=self.models,
                             n_gpus=self.config.gpus, slots_per_gpu=self.config.slots,
                             max_batch=self.config.max_batch, seed=self.config.seed,
                             extra={"mode": self.mode})

    def start(self) -> None:
        """Bind the policy and open the workload (before the clock runs)."""
        self.policy.bind(self.context())
        self.session = open_workload(self.workload, self.profile, self.config.seed,
                                     self.arrivals)

    def run(self) -> RunOutcome:
        """Start, run the clock until nothing is left, check that every request ended."""
        self.start()
        self.clock.run_driver(self.arrivals)
        self.check_all_ended()
        return self.outcome()

    def outcome(self, **extra) -> RunOutcome:
        return RunOutcome(records=self.records, models=self.models, end_s=self.clock._now,
                          busy_s=self.device.busy_s(), batches=self.next_batch,
                          preemptions=self.preemptions, lost_work_s=self.lost_work_s,
                          timeline=self.timeline, extra=extra)

    def check_all_ended(self) -> None:
        """At the end of a run: the policy holds nothing and every request has ended."""
        check_policy_empty(self.policy)
        check_states_ended(self.states, self.records.count, f"policy {self.policy.name}: ")

    # -- arrivals ----------------------------------------------------------------------------
    def _deliver(self, req: Request) -> None:
        rid = req.id
        states = self.states
        if rid >> CHUNK_BITS >= len(states.chunks):
            states.ensure(self.records.count)
        states.chunks[rid >> CHUNK_BITS][rid & MASK] = WAITING
        actions = self.policy.on_arrival(req, self.view)
        if actions:
            self._apply(actions)
        if self.progress is not None and rid % 8192 == 0:
            self.progress(self.ended, self.clock._now)

    # -- actions -----------------------------------------------------------------------------
    def _apply(self, actions: Sequence) -> None:
        for a in actions:
            kind = type(a)
            if kind is Dispatch:
                self._dispatch(a)
            elif kind is Drop:
                self._end_unserved(a.requests, DROPPED, "Drop")
            elif kind is Reject:
                self._end_unserved(a.requests, REJECTED, "Reject")
            elif kind is WakeAt:
                self._wake_at(a.time_s)
            elif kind is Preempt:
                self._preempt(a)
            else:
                raise PolicyError(f"policy {self.policy.name} returned unknown action {a!r}")

    def _dispatch(self, a: Dispatch) -> None:
        gpu, slot, reqs = a.gpu, a.slot, a.requests
        ok = 0 <= gpu < self._n_gpus and 0 <= slot < self._n_slots
        busy = ok and self.slots[gpu][slot] is not None
        if ok and not busy and len(reqs) == 1 and reqs[0].items <= self._max_batch:
            model, size = reqs[0].model, reqs[0].items  # one request: well formed
        else:
            model, size = check_dispatch(self.policy.name, a, self._n_gpus, self._n_slots,
                                         busy, self._max_batch)
        now = self.clock._now
        pred = math.nan if a.predicted_ms is None else a.predicted_ms
        start, gpus, slots, preds, sizes = self._dispatch_cols
        gpu_id = gpu + self.gpu_offset
        chunks = self.states.chunks
        for r in reqs:  # the state check and move, inlined: this runs for every request
            rid = r.id
            c, i = rid >> CHUNK_BITS, rid & MASK
            if rid < 0 or c >= len(chunks) or chunks[c][i] != WAITING:
                self.states.move(self.policy.name, "Dispatch", (r,), IN_FLIGHT)  # raises
            chunks[c][i] = IN_FLIGHT
            start[c][i] = now
            gpus[c][i] = gpu_id
            slots[c][i] = slot
            preds[c][i] = pred
            sizes[c][i] = size
        b = Batch(self.next_batch, gpu, slot, model, size, tuple(reqs), now, a.predicted_ms)
        self.next_batch += 1
        if self._credit:
            b._credit = self._take_credit(reqs)
        self.slots[gpu][slot] = b
        free = self.free
        del free[bisect_left(free, (gpu, slot))]  # the pair is there: the slot was idle
        self.device.start(b)

    def _take_credit(self, reqs: Sequence[Request]) -> float:
        """Work kept from a kernel-granularity preemption: only when the same set of
        requests is dispatched together again (their earlier batch, resumed)."""
        credit = self._credit
        got = [credit.pop(r.id, None) for r in reqs]
        first = got[0]
        if first is None or first[2] != len(reqs) or any(g != first for g in got):
            return 0.0
        return first[1]

    def _end_unserved(self, reqs: Sequence[Request], status: int, action: str) -> None:
        self.states.move(self.policy.name, action, reqs, ENDED)
        now = self.clock._now
        cols = self.records.cols
        st, fin = cols["status"], cols["finish_s"]
        for r in reqs:
            c, i = r.id >> CHUNK_BITS, r.id & MASK
            st[c][i] = status
            fin[c][i] = now
            if self._credit:
                self._credit.pop(r.id, None)
        self.ended += len(reqs)
        if self._cluster is not None:
            self._cluster.loads[self.node] -= len(reqs)
        self._next_of_session(reqs, now)

    def _wake_at(self, time_s: float) -> None:
        if time_s in self._wakes:
            return
        self._wakes.add(time_s)
        clock = self.clock
        clock.timeout(max(time_s - clock._now, 0.0), time_s).callbacks.append(self._on_wake)

    def _on_wake(self, ev) -> None:
        self._wakes.discard(ev.value)
        if not self.active:
            return
        actions = self.policy.on_timer(self.view)
        if actions:
            self._apply(actions)

    def _preempt(self, a: Preempt) -> None:
        name = self.policy.name
        cfg = self.config
        b = self.slots[a.gpu][a.slot] if 0 <= a.gpu < cfg.gpus and 0 <= a.slot < cfg.slots \
            else None
        if b is None or b._phase == "reset":
            raise PolicyError(f"policy {name}: Preempt of ({a.gpu}, {a.slot}) refused: nothing "
                              f"runs there (rule: preempt only a running batch)")
        restore = getattr(a, "restore", "restart")
        if restore not in RESTORE_MODES:
            raise PolicyError(f"policy {name}: Preempt with restore={restore!r} refused "
                              f"(rule: restore is one of {', '.join(RESTORE_MODES)})")
        if a.cost_ms < 0:
            raise PolicyError(f"policy {name}: Preempt with cost_ms={a.cost_ms} refused "
                              f"(rule: a reset costs zero or more milliseconds)")
        now = self.clock._now
        stopped, kept, kept_s = self.device.cancel(b, restore)
        if self.timeline is not None:
            self.timeline.add(b._gpu + self.gpu_offset, f"slot {b._slot}",
                              f"PREEMPTED {b._model} x{b._size}", b._dispatch_s, now,
                              b._batch_id)
        self.preemptions += 1
        self.lost_work_s += max(now - b._dispatch_s - kept_s, 0.0)
        rec = self.records
        states = self.states
        for r in b._requests:
            rec.set("start_s", r.id, math.nan)
            rec.set("gpu", r.id, -1)
            rec.set("slot", r.id, -1)
            rec.set("predicted_ms", r.id, math.nan)
            arr, i = rec.column("preemptions", r.id)
            arr[i] += 1
            states.set(r.id, WAITING)
            if kept > 0.0:
                self._credit[r.id] = (b._batch_id, kept, len(b._requests))
        b._phase = "reset"
        pending = [a.cost_ms > 0, not stopped]
        if any(pending):
            self._resets[b._batch_id] = [*pending, now]
            if pending[0]:
                self.clock.timeout(a.cost_ms / 1e3, b).callbacks.append(self._reset_timer)
        else:
            self._free_slot(b)
        if self.active:
            actions = self.policy.on_preempted(b, self.view)
            if actions:
                self._apply(actions)

    def _reset_timer(self, ev) -> None:
        self._reset_part_done(ev.value, 0)

    def slot_drained(self, b: Batch) -> None:
        """Device: the abandoned job of a preempted batch has left its stream."""
        self._reset_part_done(b, 1)

    def _reset_part_done(self, b: Batch, part: int) -> None:
        pending = self._resets.get(b._batch_id)
        if pending is None:
            return
        pending[part] = False
        if pending[0] or pending[1]:
            return
        del self._resets[b._batch_id]
        if self.timeline is not None:  # the slot is held from the preemption to now
            self.timeline.add(b._gpu + self.gpu_offset, f"slot {b._slot}", "reset",
                              pending[2], self.clock._now, -1)
        self._free_slot(b)
        if self.active:
            actions = self.policy.on_timer(self.view)
            if actions:
                self._apply(actions)

    def _free_slot(self, b: Batch) -> None:
        self.slots[b._gpu][b._slot] = None
        insort(self.free, (b._gpu, b._slot))

    # -- what the device reports -------------------------------------------------------------
    def batch_done(self, b: Batch, co_runs: tuple = ()) -> None:
        """Device: the batch's D2H copy ended; its ``_finish_s`` and phase times are set."""
        self.slots[b._gpu][b._slot] = None
        insort(self.free, (b._gpu, b._slot))
        b._phase = "done"
        fin_t = b._finish_s
        cs, ce = b._compute_start_s, b._compute_end_s
        compute_ms = (ce - cs) * 1e3
        finish, comp, status = self._done_cols
        chunks = self.states.chunks
        for r in b._requests:
            c, i = r.id >> CHUNK_BITS, r.id & MASK
            finish[c][i] = fin_t
            comp[c][i] = compute_ms
            status[c][i] = ON_TIME if fin_t <= r.deadline_s else LATE
            chunks[c][i] = ENDED
        self.ended += len(b._requests)
        if self._cluster is not None:
            self._cluster.loads[self.node] -= len(b._requests)
        if self.timeline is not None:
            label = f"{b._model} x{b._size}"
            tl = self.timeline
            g = b._gpu + self.gpu_offset
            tl.add(g, "h2d", label, b._submit_s, cs, b._batch_id)
            tl.add(g, f"slot {b._slot}", label, cs, ce, b._batch_id)
            tl.add(g, "d2h", label, ce, fin_t, b._batch_id)
        if not self.active:
            return
        done = CompletedBatch(  # positional: this runs once per batch
            b._batch_id, b._gpu, b._slot, b._model, b._size, b._requests, b._dispatch_s,
            cs, ce, fin_t, b._predicted_ms, co_runs)
        actions = self.policy.on_completion(done, self.view)
        if actions:
            self._apply(actions)
        if self.session is not None:
            self._next_of_session(b._requests, self.clock._now)

    def batch_failed(self, b: Batch, message: str) -> CompletedBatch:
        """Device: the batch failed (CUDA error, out of memory, injected fault)."""
        now = self.clock._now
        self.slots[b._gpu][b._slot] = None
        insort(self.free, (b._gpu, b._slot))
        b._phase = "done"
        rec = self.records
        for r in b._requests:
            rec.set("finish_s", r.id, now)
            rec.set("status", r.id, FAILED)
            self.states.set(r.id, ENDED)
        self.ended += len(b._requests)
        if self._cluster is not None:
            self._cluster.loads[self.node] -= len(b._requests)
        if self.timeline is not None:
            self.timeline.add(b._gpu + self.gpu_offset, f"slot {b._slot}",
                              f"FAILED {b._model} x{b._size}", b._dispatch_s, now,
                              b._batch_id)
        done = CompletedBatch(b._batch_id, b._gpu, b._slot, b._model, b._size, b._requests,
                              b._dispatch_s, now, now, now, b._predicted_ms, (), True, message)
        if self.active:
            actions = self.policy.on_completion(done, self.view)
            if actions:
                self._apply(actions)
            self._next_of_session(b._requests, now)
        return done

    def _next_of_session(self, reqs: Sequence[Request], now: float) -> None:
        if self.session is None or not self.active:
            return
        for r in reqs:
            self.arrivals.push(self.session.next_after(r, now))

    # -- stopping early (live: Ctrl-C) ------------------------------------------------------
    def end_unfinished(self) -> int:
        """After an interruption: requests never released leave the results; requests
        released but not ended are marked failed. Returns how many were marked."""
        self.active = False
        pending = self.arrivals.pending_ids()
        rec = self.records
        if pending and min(pending) == self.arrivals.released and \
                max(pending) == rec.count - 1 and len(pending) == rec.count - min(pending):
            rec.count = min(pending)  # the unreleased tail: not in the results
            pending = []
        for rid in pending:
            self.states.set(rid, WAITING)
        now = self.clock._now
        marked = 0
        self.states.ensure(rec.count)
        for rid in range(rec.count):
            state = self.states.get(rid)
            if state in (WAITING, IN_FLIGHT, NOT_ARRIVED):
                self.states.set(rid, ENDED)
                rec.set("status", rid, FAILED)
                rec.set("finish_s", rid, now)
                marked += 1
        self.ended += marked
        return marked
