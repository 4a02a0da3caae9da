"""The simulated device: fluid (processor-sharing) GPU compute and PCIe links.

:class:`FluidDevice` implements the driver's device contract over the truth model. Each
dispatched batch gets a :class:`Work` record that only the device sees (sampled solo
work, work left, current rate, co-runner overlaps, copy progress), so the policy-facing
:class:`~strait_sim.driver.batch.Batch` carries no truth.

Both fluid resources keep, for each active item, the work it has left; progress is linear
between changes. When the set of active items changes, every item's progress is brought
up to now, rates are recomputed from the new set, and one completion event is scheduled
for the item that will finish first. An event overtaken by a later change carries an old
version number and is ignored. So a batch co-running for half its life is slowed only for
that half (DESIGN.md section 5), and nothing is scheduled where nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import simpy

from strait_sim.driver.clocks import scheduler
from strait_sim.policies.base import CoRun
from strait_sim.truth.compute import ComputeTruth
from strait_sim.truth.kernel_restore import KernelRestore
from strait_sim.truth.pcie import fit_link

if TYPE_CHECKING:
    from strait_sim.driver.batch import Batch
    from strait_sim.driver.config import SimConfig
    from strait_sim.profile_bundle import ProfileBundle

EPS = 1e-12


class Work:
    """The device's private state of one batch."""

    __slots__ = ("batch", "batch_id", "gpu", "model", "model_idx", "size", "credit",
                 "work_s", "remaining_s", "rate", "scale", "co", "crowded", "tr_left",
                 "tr_done", "solo_s")

    def __init__(self, batch: Batch, model_idx: int) -> None:
        self.batch = batch
        self.batch_id = batch._batch_id
        self.gpu = batch._gpu
        self.model = batch._model
        self.model_idx = model_idx
        self.size = batch._size
        self.credit = batch._credit
        self.work_s = 0.0
        self.solo_s = 0.0
        self.remaining_s = 0.0
        self.rate = 1.0
        self.scale = 1.0
        self.co: dict[int, list] = {}  # co-runner batch id -> [model, size, overlap_s]
        # the spans beside two or more co-runners at once, [(seconds, co-runner batch
        # ids)], where the overlaps in ``co`` count a second more than once (3+ slots)
        self.crowded: list[tuple[float, tuple[int, ...]]] | None = None
        self.tr_left = 0.0  # work left in the current copy (see Link)
        self.tr_done: Callable[[Work], None] | None = None


def _note_crowded(running: list[Work], dt: float) -> None:
    """Record, for each of three or more batches running together for ``dt`` seconds,
    the span and its co-runners: the overlaps in ``Work.co`` count such a second once per
    co-runner, and the truth model's ``note_compute`` needs the spans to count the
    compute time spent beside anyone once. Only the general (3+ batches) path calls
    this, so the one- and two-batch paths pay nothing for it."""
    for w in running:
        span = (dt, tuple(o.batch_id for o in running if o is not w))
        if w.crowded is None:
            w.crowded = [span]
        else:
            w.crowded.append(span)


class ComputeUnit:
    """The compute side of one GPU: the batches in their compute phase and their rates."""

    # slotted: a 1,024-GPU run keeps 1,024 of these, read on every event (no __dict__)
    __slots__ = ("env", "gpu", "truth", "on_done", "running", "last", "version", "busy_s",
                 "_busy_since", "_call_in", "_on_event_cb", "_beside")

    def __init__(self, env: simpy.Environment, gpu: int, truth: ComputeTruth,
                 on_done: Callable[[Work], None]) -> None:
        self.env = env
        self.gpu = gpu
        self.truth = truth
        self.on_done = on_done
        self.running: list[Work] = []
        self.last = 0.0
        self.version = 0
        self.busy_s = 0.0
        self._busy_since = 0.0
        self._call_in = scheduler(env)
        self._on_event_cb = self._on_event  # bound once: one is scheduled per event
        # the slowdown beside exactly one co-runner, if the truth model offers it: the
        # two-batch paths below use it (the common co-location of a 2-slot GPU)
        self._beside = getattr(truth, "slowdown_beside", None)

    def _advance(self) -> None:
        now = self.env._now
        dt = now - self.last
        self.last = now
        running = self.running
        if dt <= 0.0 or not running:
            return
        for w in running:
            w.remaining_s -= dt * w.rate
        if len(running) > 1:
            for w in running:
                co = w.co
                for other in running:
                    if other is not w:
                        co[other.batch_id][2] += dt
            if len(running) > 2:
                _note_crowded(running, dt)

    def _rerate(self) -> None:
        running = self.running
        self.version += 1
        if not running:
            return
        truth = self.truth
        first_t = None
        if len(running) == 1:
            w = running[0]
            w.rate = 1.0
            first_t = w.remaining_s
        else:
            for w in running:
                co = [(o.model_idx, o.size) for o in running if o is not w]
                s = truth.slowdown(w.model_idx, w.size, co)
                if w.scale != 1.0:
                    s = 1.0 + (s - 1.0) * w.scale
                w.rate = 1.0 / s
                t = w.remaining_s / w.rate
                if first_t is None or t < first_t:
                    first_t = t
        self._call_in(max(first_t, 0.0), self.version, self._on_event_cb)

    def _rerate_pair(self, a: Work, b: Work) -> None:
        """:meth:`_rerate` for exactly two batches, written out (the same arithmetic)."""
        self.version += 1
        beside = self._beside
        s = beside(a.model_idx, a.size, b.model_idx, b.size)
        if a.scale != 1.0:
            s = 1.0 + (s - 1.0) * a.scale
        a.rate = 1.0 / s
        first_t = a.remaining_s / a.rate
        s = beside(b.model_idx, b.size, a.model_idx, a.size)
        if b.scale != 1.0:
            s = 1.0 + (s - 1.0) * b.scale
        b.rate = 1.0 / s
        t = b.remaining_s / b.rate
        if t < first_t:
            first_t = t
        self._call_in(first_t if first_t > 0.0 else 0.0, self.version, self._on_event_cb)

    def _pair_event(self, a: Work, b: Work) -> None:
        """:meth:`_on_event` with exactly two batches running, written out: bring both
        up to now, finish the one(s) done, re-rate the other alone."""
        now = self.env._now
        dt = now - self.last
        self.last = now
        if dt > 0.0:
            a.remaining_s -= dt * a.rate
            b.remaining_s -= dt * b.rate
            a.co[b.batch_id][2] += dt
            b.co[a.batch_id][2] += dt
        ws = a.work_s
        a_done = a.remaining_s <= EPS * (ws if ws > 1.0 else 1.0)
        ws = b.work_s
        b_done = b.remaining_s <= EPS * (ws if ws > 1.0 else 1.0)
        running = self.running
        if a_done and b_done:
            running.clear()
            self.busy_s += now - self._busy_since
            self.version += 1
            self.on_done(a)
            self.on_done(b)
            return
        if not (a_done or b_done):  # rounding: the first finisher is a hair short
            a_done = a.remaining_s / a.rate <= b.remaining_s / b.rate
        done, left = (a, b) if a_done else (b, a)
        running.remove(done)
        self.version += 1
        left.rate = 1.0
        r = left.remaining_s
        self._call_in(r if r > 0.0 else 0.0, self.version, self._on_event_cb)
        self.on_done(done)

    def _on_event(self, version: int) -> None:
        if version != self.version:
            return
        running = self.running
        if len(running) == 2 and self._beside is not None:
            self._pair_event(running[0], running[1])
            return
        if len(running) == 1:  # fast path: the only batch finishes
            w = self.running.pop()
            now = self.env._now
            self.last = now
            self.busy_s += now - self._busy_since
            self.version += 1
            self.on_done(w)
            return
        self._advance()
        done = [w for w in self.running if w.remaining_s <= EPS * max(1.0, w.work_s)]
        if not done:  # rounding: the first finisher is a hair short; finish it now
            done = [min(self.running, key=lambda w: w.remaining_s / w.rate)]
        for w in done:
            self.running.remove(w)
        if not self.running:
            self.busy_s += self.env._now - self._busy_since
        self._rerate()
        for w in done:
            self.on_done(w)

    def add(self, work: Work) -> None:
        if not self.running:  # fast path: an idle GPU
            now = self.env._now
            self.last = self._busy_since = now
            self.running.append(work)
            work.rate = 1.0
            self.version += 1
            self._call_in(work.remaining_s, self.version, self._on_event_cb)
            return
        running = self.running
        if len(running) == 1 and self._beside is not None:  # a second batch: written out
            o = running[0]
            now = self.env._now
            dt = now - self.last
            self.last = now
            if dt > 0.0:
                o.remaining_s -= dt * o.rate
            o.co[work.batch_id] = [work.model, work.size, 0.0]
            work.co[o.batch_id] = [o.model, o.size, 0.0]
            running.append(work)
            self._rerate_pair(o, work)
            return
        self._advance()
        for other in running:
            other.co[work.batch_id] = [work.model, work.size, 0.0]
            work.co[other.batch_id] = [other.model, other.size, 0.0]
        running.append(work)
        self._rerate()

    def remove(self, work: Work) -> None:
        """Take a batch out before it finishes (preemption)."""
        self._advance()
        self.running.remove(work)
        if not self.running:
            self.busy_s += self.env._now - self._busy_since
        self._rerate()

    def busy_until_now(self) -> float:
        extra = self.env._now - self._busy_since if self.running else 0.0
        return self.busy_s + extra


class Link:
    """One direction of one GPU's PCIe link, shared among its transfers.

    A transfer's work is its bytes plus its fixed cost converted to bytes at the link's
    bandwidth (``fixed_s * bytes_per_s``). Alone, a transfer takes
    ``fixed_s + bytes / bandwidth``, exactly the fitted form. With several transfers the
    sharing rule fitted from transfers.csv applies (``strait_sim.truth.pcie``):

    - ``fair``: all progress at an equal share of ``aggregate(n) x`` the bandwidth
      (``aggregate`` = 1: plain fair sharing; below 1: contention costs throughput);
    - ``serial``: one copy at a time, in start order (a single copy engine);

    and while the opposite direction of the same GPU is active, the bandwidth is
    multiplied by ``opposite_factor`` (1: full duplex).

    A batch makes at most one copy at a time, so its :class:`Work` carries the copy state
    (``tr_left``: work left in bytes, ``tr_done``: what to call when it ends).
    """

    __slots__ = ("env", "gpu", "direction", "bytes_per_s", "fixed_bytes", "serial",
                 "aggregate", "opposite_factor", "_partner", "coupled", "sharing", "last",
                 "version", "_call_in", "_on_event_cb")

    def __init__(self, env: simpy.Environment, gpu: int, direction: str, fit) -> None:
        self.env = env
        self.gpu = gpu
        self.direction = direction
        self.bytes_per_s = fit.bytes_per_ms * 1e3
        self.fixed_bytes = fit.fixed_ms / 1e3 * self.bytes_per_s
        self.serial = getattr(fit, "sharing", "fair") == "serial"
        aggregate = getattr(fit, "aggregate", None)
        self.aggregate = aggregate if callable(aggregate) else None
        self.opposite_factor = float(getattr(fit, "opposite_factor", 1.0))
        self._partner: Link | None = None
        self.coupled = False  # kept by the partner's setter: its activity changes this rate
        self.sharing: list[Work] = []
        self.last = 0.0
        self.version = 0
        self._call_in = scheduler(env)
        self._on_event_cb = self._on_event  # bound once: one is scheduled per event

    @property
    def partner(self) -> Link | None:
        """The opposite direction of the same GPU's link (None: uncoupled)."""
        return self._partner

    @partner.setter
    def partner(self, other: Link | None) -> None:
        self._partner = other
        self.coupled = self.opposite_factor != 1.0 and other is not None

    @property
    def in_flight(self) -> int:
        return len(self.sharing)

    def _rate(self, partner_active: bool | None = None) -> float:
        """Bytes per second each progressing transfer gets (with the partner direction
        active or not; by default as it is now)."""
        bw = self.bytes_per_s
        if partner_active is None:
            partner_active = self.partner is not None and bool(self.partner.sharing)
        if self.opposite_factor != 1.0 and partner_active:
            bw *= self.opposite_factor
        n = len(self.sharing)
        if self.serial or n <= 1:
            return bw
        if self.aggregate is not None:
            bw *= self.aggregate(n)
        return bw / n

    def start(self, work: Work, nbytes: float, on_done: Callable[[Work], None]) -> None:
        """Copy ``nbytes`` for ``work``; call ``on_done(work)`` when the copy ends."""
        work.tr_left = nbytes + self.fixed_bytes
        work.tr_done = on_done
        sharing = self.sharing
        coupled = self.coupled
        if not sharing and not (coupled and self.partner.sharing):
            # fast path: an idle link whose partner direction is idle (or uncoupled): the
            # copy runs alone at the full bandwidth, and no partner needs re-rating
            self.last = self.env._now
            sharing.append(work)
            self.version += 1
            self._call_in(work.tr_left / self.bytes_per_s, self.version, self._on_event_cb)
            return
        self._advance()
        was_idle = not sharing
        sharing.append(work)
        self._reschedule()
        if coupled and was_idle:
            self.partner.rerate()

    def cancel(self, work: Work) -> None:
        """Stop ``work``'s copy (preemption); a copy that already ended is left alone."""
        if work in self.sharing:
            self._advance()
            self.sharing.remove(work)
            self._reschedule()
            if not self.sharing and self.opposite_factor != 1.0 and self.partner is not None:
                self.partner.rerate()

    def rerate(self) -> None:
        """The partner direction became active or idle: bring progress up to now with the
        old rate, then reschedule with the new one."""
        if self.sharing:
            self._advance(partner_was=not self.partner.sharing if self.partner else None)
            self._reschedule()

    def _advance(self, partner_was: bool | None = None) -> None:
        now = self.env._now
        dt = now - self.last
        self.last = now
        sharing = self.sharing
        if dt <= 0.0 or not sharing:
            return
        # When the partner just changed, progress so far ran at the other rate.
        moved = dt * self._rate(partner_was)
        if self.serial:
            sharing[0].tr_left -= moved
        else:
            for w in sharing:
                w.tr_left -= moved

    def _reschedule(self) -> None:
        self.version += 1
        sharing = self.sharing
        if not sharing:
            return
        if self.serial:
            smallest = sharing[0].tr_left
        else:
            smallest = sharing[0].tr_left if len(sharing) == 1 else \
                min(w.tr_left for w in sharing)
        delay = max(smallest, 0.0) / self._rate()
        self._call_in(delay, self.version, self._on_event_cb)

    def _on_event(self, version: int) -> None:
        if version != self.version:  # overtaken by a later change
            return
        sharing = self.sharing
        coupled = self.coupled
        if len(sharing) == 1 and not (coupled and self.partner.sharing):
            # fast path: the only transfer finishes; no partner copy to re-rate
            w = sharing.pop()
            self.last = self.env._now
            self.version += 1
            w.tr_done(w)
            return
        self._advance()
        if self.serial:
            done = [sharing[0]]
        else:
            smallest = min(w.tr_left for w in sharing)
            done = [w for w in sharing if w.tr_left <= smallest + 1e-6]
        for w in done:
            sharing.remove(w)
        self._reschedule()
        if coupled and not sharing:
            self.partner.rerate()
        for w in done:
            w.tr_done(w)


def make_truth(profile: ProfileBundle, models: tuple[str, ...],
               config: SimConfig) -> ComputeTruth:
    """The run's truth model, drawing from its own stream derived from the seed."""
    truth_rng = np.random.default_rng([config.seed, 0x7275_7468])  # "truth" stream
    return ComputeTruth(profile, models, config.max_batch, truth_rng,
                        interference=config.interference)


class FluidDevice:
    """The driver's device over the truth model: GPUs of slots, and their PCIe links."""

    can_cancel = True

    def __init__(self, env: simpy.Environment, profile: ProfileBundle,
                 models: tuple[str, ...], config: SimConfig,
                 truth: ComputeTruth | None = None) -> None:
        self.env = env
        self.models = models
        self.model_index = {m: i for i, m in enumerate(models)}
        if truth is None:
            truth = make_truth(profile, models, config)
        self.truth = truth
        self._scale = getattr(self.truth, "sample_slowdown_scale", None)
        # once per batch, when its compute ends: what the truth model leaned on
        self._note = getattr(self.truth, "note_compute", None)
        self.units = [ComputeUnit(env, g, self.truth, self._compute_done)
                      for g in range(config.gpus)]
        self.links: list[tuple[Link, Link]] = []
        if config.pcie:
            h2d, d2h = fit_link(profile, "h2d"), fit_link(profile, "d2h")
            for g in range(config.gpus):
                up, down = Link(env, g, "h2d", h2d), Link(env, g, "d2h", d2h)
                up.partner, down.partner = down, up
                self.links.append((up, down))
        self.io_bytes = [profile.io_bytes(m) for m in models]
        self.restore = KernelRestore(profile)
        self.work: dict[int, Work] = {}
        self.driver = None
        self.on_phase = None  # optional: called (batch, phase) as compute and D2H start
        self._h2d_done_cb = self._h2d_done  # bound once: one is passed per batch
        self._d2h_done_cb = self._d2h_done

    def bind(self, driver) -> None:
        self.driver = driver

    # -- phases ----------------------------------------------------------------------------
    def start(self, batch: Batch) -> None:
        w = Work(batch, self.model_index[batch._model])
        self.work[w.batch_id] = w
        if self.links:
            self.links[w.gpu][0].start(w, self.io_bytes[w.model_idx][0] * w.size,
                                       self._h2d_done_cb)
        else:
            self._h2d_done(w)

    def _h2d_done(self, w: Work) -> None:
        b = w.batch
        b._phase = "compute"
        b._compute_start_s = self.env._now
        if self.on_phase is not None:
            self.on_phase(b, "compute")
        w.solo_s = self.truth.sample_solo_ms(w.model_idx, w.size) / 1e3
        w.work_s = w.solo_s * (1.0 - w.credit) if w.credit else w.solo_s
        w.remaining_s = w.work_s
        if self._scale is not None:
            w.scale = self._scale(w.model_idx, w.size)
        self.units[w.gpu].add(w)

    def _compute_done(self, w: Work) -> None:
        b = w.batch
        b._compute_end_s = self.env._now
        if self._note is not None:
            self._note(w.model_idx, w.size, w.co, b._compute_end_s - b._compute_start_s,
                       w.crowded)
        b._phase = "d2h"
        if self.on_phase is not None:
            self.on_phase(b, "d2h")
        if self.links:
            self.links[w.gpu][1].start(w, self.io_bytes[w.model_idx][1] * w.size,
                                       self._d2h_done_cb)
        else:
            self._d2h_done(w)

    def _d2h_done(self, w: Work) -> None:
        del self.work[w.batch_id]
        b = w.batch
        b._finish_s = self.env._now
        co = tuple(CoRun(m, s, o * 1e3) for m, s, o in w.co.values() if o > 0.0) \
            if w.co else ()
        self.driver.batch_done(b, co)

    # -- preemption ---------------------------------------------------------------------
    def cancel(self, batch: Batch, restore: str) -> tuple[bool, float, float]:
        """Stop the batch now. With ``restore='kernel'`` keep the work of the kernels that
        completed (REEF-style reset of the kernels in flight only)."""
        w = self.work.pop(batch._batch_id)
        phase = batch._phase
        kept = 0.0
        if phase == "compute":
            self.units[w.gpu].remove(w)
            if restore == "kernel" and w.solo_s > 0:
                done_frac = w.credit + (w.work_s - max(w.remaining_s, 0.0)) / w.solo_s
                kept = self.restore.kept_fraction(w.model, w.size, min(done_frac, 1.0))
        else:
            if self.links:
                self.links[w.gpu][0 if phase == "h2d" else 1].cancel(w)
            if restore == "kernel":
                kept = 1.0 if phase == "d2h" else w.credit
        kept_s = max(kept - w.credit, 0.0) * w.solo_s
        return True, kept, kept_s

    # -- what the view shows --------------------------------------------------------------
    def transfers_in_flight(self, gpu: int, direction: str) -> int:
        links = self.links
        return links[gpu][0 if direction == "h2d" else 1].in_flight if links else 0

    def busy_s(self) -> list[float]:
        return [u.busy_until_now() for u in self.units]
