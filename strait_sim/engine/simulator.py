"""The SimPy engine: requests flow through queues (the policy's), PCIe links and GPUs.

One long-lived process releases arrivals; everything else is event callbacks on the
fluid resources (:mod:`strait_sim.engine.fluid`). Requests are records (a small object
while in flight, a row in :class:`RequestRecords` for results), never a process each.
The policy is called on arrivals, completions, preemptions and timers, and its actions
are applied at once; the engine checks them (free slot, one model per batch, batch not
above --max-batch) and raises :class:`PolicyError` when a policy breaks the rules.

Phases of a batch: H2D copy (inputs of all its items) on its GPU's h2d link, compute on
the GPU (slowed by co-runners, fluid model), D2H copy on the d2h link. The slot is held
from dispatch to the end of D2H.

Determinism: the workload draws from ``seed``; the truth model from an independent
stream derived from ``seed``; SimPy breaks ties by insertion order. Same inputs, same seed:
the same results, bit for bit.
"""

from __future__ import annotations

import math
from bisect import insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import simpy

from strait_sim.engine.batch import Batch
from strait_sim.engine.fluid import ComputeUnit, Link
from strait_sim.engine.records import CHUNK_BITS, MASK, RequestRecords
from strait_sim.engine.rules import (
    ActionRouter,
    PolicyError,
    check_all_ended,
    check_dispatch,
    record_dispatch,
    record_unserved,
)
from strait_sim.engine.timeline import Timeline
from strait_sim.errors import UserError
from strait_sim.policies.base import (
    CompletedBatch,
    CoRun,
    Dispatch,
    Policy,
    PolicyContext,
    Preempt,
)
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.requests import LATE, ON_TIME, Request, RequestChunk
from strait_sim.truth.compute import ComputeTruth
from strait_sim.truth.pcie import fit_link
from strait_sim.workloads.base import Workload


@dataclass(frozen=True)
class SimConfig:
    """The simulated system's shape and the run's switches."""

    gpus: int = 1
    slots: int = 2
    max_batch: int = 8
    seed: int = 0
    interference: bool = True  # co-location slowdowns from pairs.csv
    pcie: bool = True  # H2D/D2H copies over the fitted links
    record_timeline: bool = False  # keep every phase for --trace-out

    def __post_init__(self) -> None:
        for name in ("gpus", "slots", "max_batch"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, "
                                f"got {getattr(self, name)}")


@dataclass
class SimOutcome:
    """What the engine hands back: the records and the run's aggregate facts."""

    records: RequestRecords
    models: tuple[str, ...]
    end_s: float
    busy_s: list[float]
    batches: int
    preemptions: int
    lost_work_s: float
    timeline: Timeline | None = None
    extra: dict = field(default_factory=dict)


class EngineView:
    """The read-only :class:`~strait_sim.policies.base.SystemView` of the simulator."""

    def __init__(self, engine: Engine) -> None:
        self._e = engine
        self.n_gpus = engine.config.gpus
        self.slots_per_gpu = engine.config.slots
        self.max_batch = engine.config.max_batch

    @property
    def now(self) -> float:
        return self._e.env.now

    def free_slots(self) -> list[tuple[int, int]]:
        return list(self._e.free)

    def running(self, gpu: int | None = None) -> list[Batch]:
        rows = self._e.slots if gpu is None else [self._e.slots[gpu]]
        return [b for row in rows for b in row if b is not None and b.phase != "reset"]

    def transfers_in_flight(self, gpu: int, direction: str) -> int:
        links = self._e.links
        return links[gpu][0 if direction == "h2d" else 1].in_flight if links else 0


class Engine(ActionRouter):
    """One simulation run. Use :func:`simulate`."""

    def __init__(self, profile: ProfileBundle, workload: Workload, policy: Policy,
                 config: SimConfig,
                 progress: Callable[[int, float], None] | None = None) -> None:
        self.profile = profile
        self.workload = workload
        self.policy = policy
        self.config = config
        self.progress = progress
        self.models = tuple(workload.models)
        for m in self.models:
            profile.require_model(m)
        self.model_index = {m: i for i, m in enumerate(self.models)}
        if config.interference and config.slots > 1 and not profile.has("pairs"):
            raise UserError(f"profile '{profile.name}' has no pairs.csv, so co-location "
                            f"cannot be modelled: use --slots 1 or --no-interference")
        self.env = simpy.Environment()
        truth_rng = np.random.default_rng([config.seed, 0x7275_7468])  # "truth" stream
        self.truth = ComputeTruth(profile, self.models, config.max_batch, truth_rng,
                                  interference=config.interference)
        self.units = [ComputeUnit(self.env, g, self.truth, self._compute_done)
                      for g in range(config.gpus)]
        self.links: list[tuple[Link, Link]] = []
        if config.pcie:
            h2d, d2h = fit_link(profile, "h2d"), fit_link(profile, "d2h")
            self.links = [(Link(self.env, g, "h2d", h2d.fixed_ms / 1e3, h2d.bytes_per_ms * 1e3),
                           Link(self.env, g, "d2h", d2h.fixed_ms / 1e3, d2h.bytes_per_ms * 1e3))
                          for g in range(config.gpus)]
        self.io_bytes = [profile.io_bytes(m) for m in self.models]
        self.slots: list[list[Batch | None]] = [[None] * config.slots
                                                for _ in range(config.gpus)]
        # idle (gpu, slot) pairs, kept sorted: the view hands out copies without a scan
        self.free: list[tuple[int, int]] = [(g, k) for g in range(config.gpus)
                                            for k in range(config.slots)]
        self.records = RequestRecords()
        self.view = EngineView(self)
        self.timeline = Timeline() if config.record_timeline else None
        self.next_id = 0
        self.next_batch = 0
        self.ended = 0
        self.preemptions = 0
        self.lost_work_s = 0.0
        self.session = None
        self._wakes: set[float] = set()

    # -- arrivals ----------------------------------------------------------------------------
    def _register_chunk(self, chunk: RequestChunk) -> tuple[int, np.ndarray]:
        """Write a chunk's static columns into the records; return first id, model map."""
        start = self.next_id
        n = len(chunk)
        self.records.ensure(start + n)
        remap = np.array([self.model_index[m] for m in chunk.models], dtype=np.int16)
        model_idx = remap[chunk.model]
        for name, values in (("arrival_s", chunk.arrival_s), ("deadline_s", chunk.deadline_s),
                             ("model", model_idx), ("priority", chunk.priority),
                             ("items", chunk.items)):
            self._write_slice(name, start, values)
        self.next_id += n
        return start, model_idx

    def _write_slice(self, name: str, start: int, values: np.ndarray) -> None:
        pos = 0
        n = len(values)
        while pos < n:
            arr, off = self.records.column(name, start + pos)
            take = min(n - pos, len(arr) - off)
            arr[off:off + take] = values[pos:pos + take]
            pos += take

    def _start_arrivals(self) -> None:
        """Release the open-loop stream: one timeout per distinct arrival time, chained
        by callbacks (cheaper than resuming a generator process per request)."""
        self._chunks = iter(self.workload.chunks(self.profile, self.config.seed))
        self._load_next_chunk()
        self._schedule_next_arrival()

    def _load_next_chunk(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            self._arr = []
            return False
        start, model_idx = self._register_chunk(chunk)
        names = self.models
        self._arr = chunk.arrival_s.tolist()
        self._dl = chunk.deadline_s.tolist()
        self._prio = chunk.priority.tolist()
        self._items = chunk.items.tolist()
        self._mname = [names[i] for i in model_idx.tolist()]
        self._base = start
        self._pos = 0
        return True

    def _schedule_next_arrival(self) -> None:
        if self._pos >= len(self._arr) and not self._load_next_chunk():
            return
        ev = self.env.timeout(max(self._arr[self._pos] - self.env.now, 0.0))
        ev.callbacks.append(self._on_arrival_time)

    def _on_arrival_time(self, _ev: simpy.Event) -> None:
        arr, pos = self._arr, self._pos
        t = arr[pos]
        n = len(arr)
        on_arrival, view, apply = self.policy.on_arrival, self.view, self._apply
        while True:  # every request that arrives at this instant
            rid = self._base + pos
            req = Request(rid, self._mname[pos], self._prio[pos], t, self._dl[pos],
                          self._items[pos])
            pos += 1
            self._pos = pos
            actions = on_arrival(req, view)
            if actions:
                apply(actions)
            if self.progress is not None and rid % 8192 == 0:
                self.progress(self.ended, self.env.now)
            if pos >= n or arr[pos] != t:
                break
        self._schedule_next_arrival()

    def _closed_loop_start(self) -> None:
        self.session = self.workload.session(self.profile, self.config.seed)
        self._schedule_chunk(self.session.first_requests())

    def _schedule_chunk(self, chunk: RequestChunk | None) -> None:
        if chunk is None or len(chunk) == 0:
            return
        start, model_idx = self._register_chunk(chunk)
        for i in range(len(chunk)):
            req = Request(start + i, self.models[int(model_idx[i])], int(chunk.priority[i]),
                          float(chunk.arrival_s[i]), float(chunk.deadline_s[i]),
                          int(chunk.items[i]))
            ev = self.env.timeout(max(req.arrival_s - self.env.now, 0.0), value=req)
            ev.callbacks.append(self._closed_arrival)

    def _closed_arrival(self, ev: simpy.Event) -> None:
        actions = self.policy.on_arrival(ev.value, self.view)
        if actions:
            self._apply(actions)

    # -- actions -------------------------------------------------------------------------------
    def _dispatch(self, a: Dispatch) -> None:
        gpu, slot, reqs = a.gpu, a.slot, a.requests
        busy = 0 <= gpu < self.config.gpus and 0 <= slot < self.config.slots \
            and self.slots[gpu][slot] is not None
        model, size = check_dispatch(self.policy, a, gpus=self.config.gpus,
                                     slots=self.config.slots, slot_busy=busy,
                                     max_batch=self.config.max_batch)
        now = self.env.now
        record_dispatch(self.records, self.policy, reqs, now=now, gpu=gpu, slot=slot,
                        size=size, predicted_ms=a.predicted_ms)
        b = Batch(self.next_batch, gpu, slot, model, self.model_index[model], size, reqs, now,
                  a.predicted_ms)
        self.next_batch += 1
        self.slots[gpu][slot] = b
        self.free.remove((gpu, slot))
        if self.links:
            self.links[gpu][0].start(b, self.io_bytes[b.model_idx][0] * size, self._h2d_done)
        else:
            self._h2d_done(b)

    def _h2d_done(self, b: Batch) -> None:
        now = self.env.now
        if self.timeline is not None:
            self.timeline.add(b.gpu, "h2d", f"{b.model} x{b.size}", b.dispatch_s, now,
                              b.batch_id)
        b.phase = "compute"
        b.compute_start_s = now
        b.work_s = self.truth.sample_solo_ms(b.model_idx, b.size) / 1e3
        b.remaining_s = b.work_s
        self.units[b.gpu].add(b)

    def _compute_done(self, b: Batch) -> None:
        now = self.env.now
        b.compute_end_s = now
        if self.timeline is not None:
            self.timeline.add(b.gpu, f"slot {b.slot}", f"{b.model} x{b.size}",
                              b.compute_start_s, now, b.batch_id)
        b.phase = "d2h"
        if self.links:
            self.links[b.gpu][1].start(b, self.io_bytes[b.model_idx][1] * b.size,
                                       self._d2h_done)
        else:
            self._d2h_done(b)

    def _d2h_done(self, b: Batch) -> None:
        now = self.env.now
        if self.timeline is not None and self.links:
            self.timeline.add(b.gpu, "d2h", f"{b.model} x{b.size}", b.compute_end_s, now,
                              b.batch_id)
        self.slots[b.gpu][b.slot] = None
        insort(self.free, (b.gpu, b.slot))
        compute_ms = (b.compute_end_s - b.compute_start_s) * 1e3
        cols = self.records.cols
        finish, comp, status = cols["finish_s"], cols["compute_ms"], cols["status"]
        for r in b.requests:
            c, i = r.id >> CHUNK_BITS, r.id & MASK
            finish[c][i] = now
            comp[c][i] = compute_ms
            status[c][i] = ON_TIME if now <= r.deadline_s else LATE
        self.ended += len(b.requests)
        done = CompletedBatch(  # positional: this runs once per batch
            b.batch_id, b.gpu, b.slot, b.model, b.size, b.requests, b.dispatch_s,
            b.compute_start_s, b.compute_end_s, now, b.predicted_ms,
            tuple(CoRun(m, s, o * 1e3) for m, s, o in b.co.values() if o > 0.0)
            if b.co else ())
        actions = self.policy.on_completion(done, self.view)
        if actions:
            self._apply(actions)
        if self.session is not None:
            for r in b.requests:
                self._schedule_chunk(self.session.next_after(r, now))

    def _end_unserved(self, reqs: Sequence[Request], status: int) -> None:
        now = self.env.now
        record_unserved(self.records, self.policy, reqs, status=status, now=now)
        self.ended += len(reqs)
        if self.session is not None:
            for r in reqs:
                self._schedule_chunk(self.session.next_after(r, now))

    def _wake_at(self, time_s: float) -> None:
        if time_s in self._wakes:
            return
        self._wakes.add(time_s)
        ev = self.env.timeout(max(time_s - self.env.now, 0.0), value=time_s)
        ev.callbacks.append(self._on_wake)

    def _on_wake(self, ev: simpy.Event) -> None:
        self._wakes.discard(ev.value)
        actions = self.policy.on_timer(self.view)
        if actions:
            self._apply(actions)

    def _preempt(self, a: Preempt) -> None:
        b = self.slots[a.gpu][a.slot] if 0 <= a.gpu < self.config.gpus else None
        if b is None or b.phase == "reset":
            raise PolicyError(f"policy {self.policy.name} preempted idle slot "
                              f"({a.gpu}, {a.slot})")
        now = self.env.now
        if b.phase == "compute":
            self.units[b.gpu].remove(b)
        elif self.links:
            self.links[b.gpu][0 if b.phase == "h2d" else 1].cancel(b)
        if self.timeline is not None:
            self.timeline.add(b.gpu, f"slot {b.slot}", f"PREEMPTED {b.model} x{b.size}",
                              b.dispatch_s, now, b.batch_id)
        self.preemptions += 1
        self.lost_work_s += now - b.dispatch_s
        rec = self.records
        for r in b.requests:
            rec.set("start_s", r.id, math.nan)
            rec.set("gpu", r.id, -1)
            rec.set("slot", r.id, -1)
            rec.set("predicted_ms", r.id, math.nan)
            arr, i = rec.column("preemptions", r.id)
            arr[i] += 1
        b.phase = "preempted"
        if a.cost_ms > 0:
            placeholder = Batch(-1, b.gpu, b.slot, b.model, b.model_idx, b.size, b.requests,
                                now, None)
            placeholder.phase = "reset"
            self.slots[b.gpu][b.slot] = placeholder
            ev = self.env.timeout(a.cost_ms / 1e3, value=placeholder)
            ev.callbacks.append(self._reset_done)
        else:
            self.slots[b.gpu][b.slot] = None
            insort(self.free, (b.gpu, b.slot))
        actions = self.policy.on_preempted(b, self.view)
        if actions:
            self._apply(actions)

    def _reset_done(self, ev: simpy.Event) -> None:
        p: Batch = ev.value
        if self.timeline is not None:
            self.timeline.add(p.gpu, f"slot {p.slot}", "reset", p.dispatch_s, self.env.now, -1)
        self.slots[p.gpu][p.slot] = None
        insort(self.free, (p.gpu, p.slot))
        actions = self.policy.on_timer(self.view)
        if actions:
            self._apply(actions)

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> SimOutcome:
        self.policy.bind(PolicyContext(
            profile=self.profile, models=self.models, n_gpus=self.config.gpus,
            slots_per_gpu=self.config.slots, max_batch=self.config.max_batch,
            seed=self.config.seed))
        if self.workload.closed_loop:
            self._closed_loop_start()
        else:
            self._start_arrivals()
        self.env.run()
        self._check_all_ended()
        return SimOutcome(
            records=self.records, models=self.models, end_s=self.env.now,
            busy_s=[u.busy_until_now() for u in self.units], batches=self.next_batch,
            preemptions=self.preemptions, lost_work_s=self.lost_work_s,
            timeline=self.timeline)

    def _check_all_ended(self) -> None:
        check_all_ended(self.policy, self.records, self.ended)


def simulate(profile: ProfileBundle, workload: Workload, policy: Policy,
             config: SimConfig | None = None,
             progress: Callable[[int, float], None] | None = None) -> SimOutcome:
    """Run ``workload`` through ``policy`` on the GPUs ``profile`` describes."""
    return Engine(profile, workload, policy, config or SimConfig(), progress).run()
