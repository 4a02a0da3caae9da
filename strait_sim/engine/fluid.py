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
        self._on_event_cb = self._on_event  # bound once: one is appended per event

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
        self.env.timeout(max(first_t, 0.0), self.version).callbacks.append(self._on_event_cb)

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
            self.env.timeout(batch.remaining_s, self.version).callbacks.append(
                self._on_event_cb)
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


class Link:
    """One direction of one GPU's PCIe link, shared fairly among its transfers.

    A transfer's work is its bytes plus its fixed cost converted to bytes at the link's
    bandwidth (``fixed_s * bytes_per_s``); all active transfers progress at an equal share
    of the bandwidth. Alone, a transfer takes ``fixed_s + bytes / bandwidth``, exactly the
    fitted form; with n equal transfers started together each takes n times as long. This
    treats the per-copy overhead as serialised on the link, like the copy engine's
    descriptor processing, and it needs one event per transfer instead of two.

    A batch carries its own transfer state (``tr_left``: work left in bytes, ``tr_done``:
    what to call when it ends), since it makes at most one copy at a time: no transfer
    object per copy.
    """

    def __init__(self, env: simpy.Environment, gpu: int, direction: str, fixed_s: float,
                 bytes_per_s: float) -> None:
        self.env = env
        self.gpu = gpu
        self.direction = direction
        self.fixed_bytes = fixed_s * bytes_per_s
        self.bytes_per_s = bytes_per_s
        self.sharing: list[Batch] = []
        self.last = 0.0
        self.version = 0
        self._on_event_cb = self._on_event  # bound once: one is appended per event

    @property
    def in_flight(self) -> int:
        return len(self.sharing)

    def start(self, batch: Batch, nbytes: float, on_done: Callable[[Batch], None]) -> None:
        """Copy ``nbytes`` for ``batch``; call ``on_done(batch)`` when the copy ends."""
        batch.tr_left = nbytes + self.fixed_bytes
        batch.tr_done = on_done
        sharing = self.sharing
        if not sharing:  # fast path: an idle link
            self.last = self.env.now
            sharing.append(batch)
            self.version += 1
            self.env.timeout(batch.tr_left / self.bytes_per_s,
                             self.version).callbacks.append(self._on_event_cb)
            return
        self._advance()
        sharing.append(batch)
        self._reschedule()

    def cancel(self, batch: Batch) -> None:
        """Stop ``batch``'s copy (preemption); a copy that already ended is left alone."""
        if batch in self.sharing:
            self._advance()
            self.sharing.remove(batch)
            self._reschedule()

    def _advance(self) -> None:
        now = self.env.now
        dt = now - self.last
        self.last = now
        if dt > 0.0 and self.sharing:
            moved = dt * self.bytes_per_s / len(self.sharing)
            for b in self.sharing:
                b.tr_left -= moved

    def _reschedule(self) -> None:
        self.version += 1
        sharing = self.sharing
        if not sharing:
            return
        smallest = sharing[0].tr_left if len(sharing) == 1 else \
            min(b.tr_left for b in sharing)
        delay = max(smallest, 0.0) * len(sharing) / self.bytes_per_s
        self.env.timeout(delay, self.version).callbacks.append(self._on_event_cb)

    def _on_event(self, ev: simpy.Event) -> None:
        if ev.value != self.version:  # overtaken by a later change
            return
        sharing = self.sharing
        if len(sharing) == 1:  # fast path: the only transfer finishes
            b = sharing.pop()
            self.last = self.env.now
            self.version += 1
            b.tr_done(b)
            return
        self._advance()
        smallest = min(b.tr_left for b in sharing)
        done = [b for b in sharing if b.tr_left <= smallest + 1e-6]
        for b in done:
            sharing.remove(b)
        self._reschedule()
        for b in done:
            b.tr_done(b)
