"""Fluid (processor-sharing) resources: GPU compute and PCIe links.

Both keep, for each active item, the work it has left; progress is linear between
changes. When the set of active items changes, every item's progress is brought up to
now, rates are recomputed from the new set, and one completion event is scheduled for the
item that will finish first. An event that was overtaken by a later change carries an old
version number and is ignored. This is the re-rating that DESIGN.md section 5 asks for:
a batch co-running for half its life is slowed only for that half.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import simpy

if TYPE_CHECKING:
    from strait_sim.engine.batch import Batch
    from strait_sim.truth.compute import ComputeTruth

EPS = 1e-12


class ComputeUnit:
    """The compute side of one GPU: the batches in their compute phase and their rates."""

    def __init__(self, env: simpy.Environment, gpu: int, truth: ComputeTruth,
                 on_done: Callable[[Batch], None]) -> None:
        self.env = env
        self.gpu = gpu
        self.truth = truth
        self.on_done = on_done
        self.running: list[Batch] = []
        self.last = 0.0
        self.version = 0
        self.busy_s = 0.0
        self._busy_since = 0.0

    def _advance(self) -> None:
        now = self.env.now
        dt = now - self.last
        self.last = now
        running = self.running
        if dt <= 0.0 or not running:
            return
        for b in running:
            b.remaining_s -= dt * b.rate
        if len(running) > 1:
            for b in running:
                co = b.co
                for other in running:
                    if other is not b:
                        co[other.batch_id][2] += dt

    def _rerate(self) -> None:
        running = self.running
        self.version += 1
        if not running:
            return
        truth = self.truth
        first_t = None
        if len(running) == 1:
            b = running[0]
            b.rate = 1.0
            first_t = b.remaining_s
        else:
            for b in running:
                co = [(o.model_idx, o.size) for o in running if o is not b]
                b.rate = 1.0 / truth.slowdown(b.model_idx, b.size, co)
                t = b.remaining_s / b.rate
                if first_t is None or t < first_t:
                    first_t = t
        ev = self.env.timeout(max(first_t, 0.0), value=self.version)
        ev.callbacks.append(self._on_event)

    def _on_event(self, ev: simpy.Event) -> None:
        if ev.value != self.version:
            return
        if len(self.running) == 1:  # fast path: the only batch finishes
            b = self.running.pop()
            now = self.env.now
            self.last = now
            self.busy_s += now - self._busy_since
            self.version += 1
            self.on_done(b)
            return
        self._advance()
        done = [b for b in self.running if b.remaining_s <= EPS * max(1.0, b.work_s)]
        if not done:  # rounding: the first finisher is a hair short; finish it now
            done = [min(self.running, key=lambda b: b.remaining_s / b.rate)]
        for b in done:
            self.running.remove(b)
        if not self.running:
            self.busy_s += self.env.now - self._busy_since
        self._rerate()
        for b in done:
            self.on_done(b)

    def add(self, batch: Batch) -> None:
        if not self.running:  # fast path: an idle GPU
            now = self.env.now
            self.last = self._busy_since = now
            self.running.append(batch)
            batch.rate = 1.0
            self.version += 1
            ev = self.env.timeout(batch.remaining_s, value=self.version)
            ev.callbacks.append(self._on_event)
            return
        self._advance()
        for other in self.running:
            other.co[batch.batch_id] = [batch.model, batch.size, 0.0]
            batch.co[other.batch_id] = [other.model, other.size, 0.0]
        self.running.append(batch)
        self._rerate()

    def remove(self, batch: Batch) -> None:
        """Take a batch out before it finishes (preemption)."""
        self._advance()
        self.running.remove(batch)
        if not self.running:
            self.busy_s += self.env.now - self._busy_since
        self._rerate()

    def busy_until_now(self) -> float:
        extra = self.env.now - self._busy_since if self.running else 0.0
        return self.busy_s + extra


class Transfer:
    __slots__ = ("batch", "remaining", "phase", "start_s", "on_done")

    def __init__(self, batch: Batch, work: float, start_s: float,
                 on_done: Callable[[Batch], None]) -> None:
        self.batch = batch
        self.remaining = work  # bytes, plus the fixed cost expressed in bytes
        self.phase = "share"  # "share", "done" or "cancelled"
        self.start_s = start_s
        self.on_done = on_done


class Link:
    """One direction of one GPU's PCIe link, shared fairly among its transfers.

    A transfer's work is its bytes plus its fixed cost converted to bytes at the link's
    bandwidth (``fixed_s * bytes_per_s``); all active transfers progress at an equal share
    of the bandwidth. Alone, a transfer takes ``fixed_s + bytes / bandwidth``, exactly the
    fitted form; with n equal transfers started together each takes n times as long. This
    treats the per-copy overhead as serialised on the link, like the copy engine's
    descriptor processing, and it needs one event per transfer instead of two.
    """

    def __init__(self, env: simpy.Environment, gpu: int, direction: str, fixed_s: float,
                 bytes_per_s: float) -> None:
        self.env = env
        self.gpu = gpu
        self.direction = direction
        self.fixed_bytes = fixed_s * bytes_per_s
        self.bytes_per_s = bytes_per_s
        self.sharing: list[Transfer] = []
        self.last = 0.0
        self.version = 0

    @property
    def in_flight(self) -> int:
        return len(self.sharing)

    def start(self, batch: Batch, nbytes: float, on_done: Callable[[Batch], None]
              ) -> Transfer:
        now = self.env.now
        tr = Transfer(batch, nbytes + self.fixed_bytes, now, on_done)
        if not self.sharing:  # fast path: an idle link
            self.last = now
            self.sharing.append(tr)
            self.version += 1
            ev = self.env.timeout(tr.remaining / self.bytes_per_s, value=self.version)
            ev.callbacks.append(self._on_event)
            return tr
        self._advance()
        self.sharing.append(tr)
        self._reschedule()
        return tr

    def cancel(self, tr: Transfer) -> None:
        if tr.phase == "share":
            self._advance()
            self.sharing.remove(tr)
            self._reschedule()
        tr.phase = "cancelled"

    def _advance(self) -> None:
        now = self.env.now
        dt = now - self.last
        self.last = now
        if dt > 0.0 and self.sharing:
            moved = dt * self.bytes_per_s / len(self.sharing)
            for tr in self.sharing:
                tr.remaining -= moved

    def _reschedule(self) -> None:
        self.version += 1
        sharing = self.sharing
        if not sharing:
            return
        smallest = sharing[0].remaining if len(sharing) == 1 else \
            min(tr.remaining for tr in sharing)
        delay = max(smallest, 0.0) * len(sharing) / self.bytes_per_s
        ev = self.env.timeout(delay, value=self.version)
        ev.callbacks.append(self._on_event)

    def _on_event(self, ev: simpy.Event) -> None:
        if ev.value != self.version:
            return
        sharing = self.sharing
        if len(sharing) == 1:  # fast path: the only transfer finishes
            tr = sharing.pop()
            self.last = self.env.now
            self.version += 1
            tr.phase = "done"
            tr.on_done(tr.batch)
            return
        self._advance()
        smallest = min(tr.remaining for tr in sharing)
        done = [tr for tr in sharing if tr.remaining <= smallest + 1e-6]
        for tr in done:
            sharing.remove(tr)
        for tr in done:
            tr.phase = "done"
        self._reschedule()
        for tr in done:
            tr.on_done(tr.batch)
