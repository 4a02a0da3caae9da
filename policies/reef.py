"""``reef``: software-defined reset-based preemption of low-priority work.

Stands for REEF (Han et al., OSDI'22), the "software-defined preemption" Strait compares
against: real-time (HP) work is never made to wait for best-effort (LP) work. When an HP
request arrives and no slot is free, running LP batches are killed (their GPU queues
reset, which takes ``preempt_cost_ms`` during which the slot is unusable), the HP work
takes the slot, and the killed batches go back to the *front* of their queue and restart
from scratch later. The work they had done is lost: the engine counts it
(``engine.lost_work_s`` and ``preemptions`` per request in the results).

- HP before LP, FIFO within a class (``order="arrival"``; ``"deadline"`` gives EDF);
  every free slot is filled (LP co-runs beside HP, as REEF's dynamic kernel padding lets
  best-effort kernels fill what the real-time task leaves; ``lp_with_hp=False`` keeps a
  GPU that runs HP work free of LP).
- Victims: LP-only batches; those still copying in or computing before those already
  copying out (``preempt_d2h=False`` spares the latter altogether: their output is
  nearly home), then the most recently dispatched first (least work lost). One victim per
  HP batch that lacks a slot (``max_batch`` HP items per batch), counting resets already
  under way.
- No deadlines are predicted, no requests dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from strait_sim.policies.base import (
    NO_ACTIONS,
    Action,
    CompletedBatch,
    Dispatch,
    Policy,
    PolicyContext,
    Preempt,
    RunningBatch,
    SystemView,
)
from strait_sim.policies.classqueues import ClassQueues
from strait_sim.policies.estimates import check_max_batch, check_positive
from strait_sim.requests import HIGH, LOW, Request

PHASE_RANK = {"h2d": 0, "compute": 0, "d2h": 1}


class ReefPolicy(Policy):
    """Strict priority; an HP arrival kills running LP batches, which restart later."""

    name = "reef"
    summary = ("REEF-like software-defined preemption: an HP arrival resets running LP "
               "batches, which restart later (cost is a parameter)")

    def __init__(self, preempt_cost_ms: float = 0.1, order: str = "arrival",
                 preempt_d2h: bool = False, lp_with_hp: bool = True,
                 max_batch: int | None = None) -> None:
        self.preempt_cost_ms = check_positive("preempt_cost_ms", preempt_cost_ms,
                                              allow_zero=True)
        if order not in ("arrival", "deadline"):
            raise ValueError(f"order must be 'arrival' or 'deadline', got {order!r}")
        self.order = order
        self.preempt_d2h = bool(preempt_d2h)
        self.lp_with_hp = bool(lp_with_hp)
        self.max_batch = check_max_batch(max_batch)

    def bind(self, ctx: PolicyContext) -> None:
        super().bind(ctx)
        self.q = ClassQueues(ctx.models, order=self.order)
        self.batch_items = min(self.max_batch or ctx.max_batch, ctx.max_batch)
        self.resetting = 0  # slots freed by a preemption, not usable yet
        self.preempted = 0

    def params(self) -> dict:
        return {"preempt_cost_ms": self.preempt_cost_ms, "order": self.order,
                "preempt_d2h": self.preempt_d2h, "lp_with_hp": self.lp_with_hp,
                "max_batch": self.max_batch}

    def waiting(self) -> int:
        return len(self.q)

    # -- events ------------------------------------------------------------------------------
    def on_arrival(self, request: Request, view: SystemView) -> Sequence[Action]:
        self.q.push(request)
        free = view.free_slots()
        if free:
            return self._fill(view, free)
        if request.priority == HIGH:
            return self._preempt_for_hp(view)
        return NO_ACTIONS

    def on_completion(self, batch: CompletedBatch, view: SystemView) -> Sequence[Action]:
        return self._fill(view, view.free_slots())

    def on_timer(self, view: SystemView) -> Sequence[Action]:
        # the engine calls this when a reset finishes (REEF sets no timers of its own)
        if self.resetting:
            self.resetting -= 1
        return self._fill(view, view.free_slots())

    def on_preempted(self, batch: RunningBatch, view: SystemView) -> Sequence[Action]:
        for r in batch.requests:
            self.q.push(r, front=True)
        return self._fill(view, view.free_slots())

    # -- decisions ---------------------------------------------------------------------------
    def _preempt_for_hp(self, view: SystemView) -> list[Action]:
        q = self.q
        hp_batches = sum(-(-q.waiting_items(HIGH, m) // self.batch_items) for m in q.models
                         if q.waiting_items(HIGH, m))
        needed = hp_batches - self.resetting
        if needed <= 0:
            return []
        victims = [b for b in view.running() if b.priority == LOW
                   and (self.preempt_d2h or b.phase != "d2h")]
        victims.sort(key=lambda b: (PHASE_RANK.get(b.phase, 0), -b.dispatch_s, -b.batch_id))
        actions: list[Action] = []
        for b in victims[:needed]:
            actions.append(Preempt(b.gpu, b.slot, self.preempt_cost_ms))
            self.preempted += 1
            if self.preempt_cost_ms > 0:
                self.resetting += 1
        return actions

    def _fill(self, view: SystemView, free: list[tuple[int, int]]) -> list[Action]:
        q = self.q
        if not free or not len(q):
            return []
        actions: list[Action] = []
        hp_gpus: set[int] | None = None
        for gpu, slot in free:
            if q.counts[HIGH]:
                model, _ = q.first(HIGH)  # type: ignore[misc]
                actions.append(Dispatch(gpu, slot, q.take(HIGH, model, self.batch_items)))
                if hp_gpus is not None:
                    hp_gpus.add(gpu)
                continue
            if not q.counts[LOW]:
                break
            if not self.lp_with_hp:
                if hp_gpus is None:
                    hp_gpus = {b.gpu for b in view.running() if b.priority == HIGH}
                    hp_gpus.update(a.gpu for a in actions)  # type: ignore[union-attr]
                if gpu in hp_gpus:
                    continue
            model, _ = q.first(LOW)  # type: ignore[misc]
            actions.append(Dispatch(gpu, slot, q.take(LOW, model, self.batch_items)))
        return actions
