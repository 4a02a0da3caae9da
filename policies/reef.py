"""``reef``: software-defined reset-based preemption of low-priority work.

Stands for REEF (Han et al., OSDI'22), the "software-defined preemption" Strait compares
against: real-time (HP) work is never made to wait for best-effort (LP) work. When an HP
request arrives and no slot is free, running LP batches are reset (which takes
``preempt_cost_ms`` during which the slot is unusable) and the HP work takes the slot.

What it keeps of REEF:

- **Reset of the kernels in flight only** (``restore="kernel"``, the default): REEF kills
  the best-effort kernels that are running or queued on the device and re-launches them
  later; kernels that completed keep their results. The killed batch's requests are kept
  together and re-dispatched as the same set before any other LP work, so the simulator
  resumes them with the work of their completed kernels (kernels.csv gives the kernel
  boundaries; a bundle without kernels uses a documented number of equal kernels,
  ``strait_sim/truth/kernel_restore.py``). Only the kernel in flight is lost; the engine
  counts it in ``engine.lost_work_s``. ``restore="restart"`` loses the whole batch's work
  (the batch goes back to the front of its queue): a harsher, non-REEF variant kept for
  comparison. A live device cannot resume a batch and restarts it.
- **Bounded best-effort interference** (``pad_slowdown``): REEF's dynamic kernel padding
  launches best-effort kernels only into what the real-time kernels leave idle, so they
  barely slow real-time work. A slot-level simulator has no kernel-level padding, so we
  bound the effect instead: an LP batch may co-run beside HP work on a GPU only when its
  predicted slowdown of every HP batch there is at most ``pad_slowdown`` (from the
  ``predictor``, fitted on the profile's co-located runs; static, as REEF's profiles
  are), and an HP batch dispatched beside running LP batches resets those that would
  slow it more than that (kernel restore). ``pad_slowdown=None`` lets LP co-run
  unbounded (``lp_with_hp=False`` keeps any GPU that runs HP work free of LP).
- HP before LP, FIFO within a class (``order="arrival"``; ``"deadline"`` gives EDF).
- Victims when no slot is free: LP-only batches; those still copying in or computing
  before those already copying out (``preempt_d2h=False`` spares the latter: their
  output is nearly home), then the most recently dispatched first (least work lost). One
  victim per HP batch that lacks a slot (``max_batch`` HP items per batch), counting
  resets already under way.

What it drops: REEF's device-queue mechanics (its reset cost is one parameter, not a
model of queue flushing), kernel-level scheduling, and its GPU-side priority; no
deadlines are predicted, no requests are dropped.
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
from strait_sim.policies.estimates import build_predictor, check_max_batch, check_positive
from strait_sim.policies.hp_work import HpWork, hp_work_on
from strait_sim.requests import HIGH, LOW, Request

PHASE_RANK = {"h2d": 0, "compute": 0, "d2h": 1}
RESTORE = ("kernel", "restart")


class ReefPolicy(Policy):
    """Strict priority; an HP arrival resets running LP batches (kernel restore), and LP
    work beside HP is bounded (padding)."""

    name = "reef"
    summary = ("REEF-like software-defined preemption: an HP arrival resets running LP "
               "batches (kernels in flight only), LP interference beside HP bounded")

    def __init__(self, preempt_cost_ms: float = 0.1, order: str = "arrival",
                 preempt_d2h: bool = False, lp_with_hp: bool = True,
                 max_batch: int | None = None, restore: str = "kernel",
                 pad_slowdown: float | None = 1.25, predictor: str = "pairs") -> None:
        self.preempt_cost_ms = check_positive("preempt_cost_ms", preempt_cost_ms,
                                              allow_zero=True)
        if order not in ("arrival", "deadline"):
            raise ValueError(f"order must be 'arrival' or 'deadline', got {order!r}")
        self.order = order
        self.preempt_d2h = bool(preempt_d2h)
        self.lp_with_hp = bool(lp_with_hp)
        self.max_batch = check_max_batch(max_batch)
        if restore not in RESTORE:
            raise ValueError(f"restore must be one of {', '.join(RESTORE)}, got {restore!r}")
        self.restore = restore
        if pad_slowdown is not None:
            pad_slowdown = check_positive("pad_slowdown", pad_slowdown)
            if pad_slowdown < 1.0:
                raise ValueError(f"pad_slowdown must be >= 1 (a slowdown), got {pad_slowdown!r}")
        self.pad_slowdown = pad_slowdown
        if not isinstance(predictor, str) or not predictor:
            raise ValueError(f"predictor must be a predictor name, got {predictor!r}")
        self.predictor = predictor

    def bind(self, ctx: PolicyContext) -> None:
        super().bind(ctx)
        self.q = ClassQueues(ctx.models, order=self.order)
        self.batch_items = min(self.max_batch or ctx.max_batch, ctx.max_batch)
        self.resetting = 0  # slots freed by a preemption, not usable yet
        self.preempted = 0
        self.resume: list[tuple[Request, ...]] = []  # reset batches, kept together
        self.est = None
        if self.pad_slowdown is not None and ctx.slots_per_gpu > 1:
            from strait_sim.policies.occupancy import OccupancyEstimator

            pred, _ = build_predictor(self.predictor, ctx.profile, None)
            self.est = OccupancyEstimator(ctx, pred, self.max_batch)

    def params(self) -> dict:
        return {"preempt_cost_ms": self.preempt_cost_ms, "order": self.order,
                "preempt_d2h": self.preempt_d2h, "lp_with_hp": self.lp_with_hp,
                "max_batch": self.max_batch, "restore": self.restore,
                "pad_slowdown": self.pad_slowdown, "predictor": self.predictor}

    def waiting(self) -> int:
        return len(self.q) + sum(len(b) for b in self.resume)

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
        if self.restore == "kernel" and batch.priority == LOW:
            self.resume.append(tuple(batch.requests))  # resumed as the same set
        else:
            for r in batch.requests:
                self.q.push(r, front=True)
        return self._fill(view, view.free_slots())

    # -- padding -----------------------------------------------------------------------------
    def _hp_slowdown(self, hp_model: str, hp_size: int, lp_model: str, lp_size: int) -> float:
        """Predicted slowdown of an HP batch while an LP batch computes beside it."""
        assert self.est is not None
        return 1.0 + self.est.excess(hp_model, hp_size, lp_model, lp_size)

    def _padded(self, hp: Sequence[tuple[str, int]], model: str, size: int) -> bool:
        """May an LP batch (model, size) run beside the HP batches ``hp`` of a GPU?"""
        if self.est is None or not hp:
            return True
        pad = self.pad_slowdown
        return all(self._hp_slowdown(m, b, model, size) <= pad for m, b in hp)

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
            actions.append(Preempt(b.gpu, b.slot, self.preempt_cost_ms, self.restore))
            self.preempted += 1
            if self.preempt_cost_ms > 0:
                self.resetting += 1
        return actions

    def _fill(self, view: SystemView, free: list[tuple[int, int]]) -> list[Action]:
        q = self.q
        if not free or not (len(q) or self.resume):
            return []
        actions: list[Action] = []
        padding = self.est is not None
        # HP (model, size) per GPU visited, read from the view on a GPU's first visit
        hp_on: dict[int, list[HpWork]] | None = \
            {} if padding or not self.lp_with_hp else None
        top = self.batch_items
        for gpu, slot in free:
            if q.counts[HIGH]:
                model, _ = q.first(HIGH)  # type: ignore[misc]
                reqs = q.take(HIGH, model, top)
                actions.append(Dispatch(gpu, slot, reqs))
                if hp_on is not None:
                    size = min(sum(r.items for r in reqs), self.ctx.max_batch)
                    hp_work_on(view, gpu, hp_on).append(HpWork(model, size))
                    if padding:
                        actions.extend(self._unpad(view, gpu, model, size, actions))
                continue
            if not (q.counts[LOW] or self.resume):
                break
            hp = hp_work_on(view, gpu, hp_on) if hp_on is not None else []
            if hp and not self.lp_with_hp:
                continue
            reqs = self._next_lp(hp)
            if reqs is None:
                continue
            actions.append(Dispatch(gpu, slot, reqs))
        return actions

    def _next_lp(self, hp: Sequence[tuple[str, int]]) -> tuple[Request, ...] | None:
        """The LP batch for a slot beside ``hp``: a reset batch first (resumed as the same
        set), then the queues in order; with padding, the first that keeps every HP
        batch within ``pad_slowdown``."""
        top, cap = self.batch_items, self.ctx.max_batch
        for i, reqs in enumerate(self.resume):
            size = min(sum(r.items for r in reqs), cap)
            if self._padded(hp, reqs[0].model, size):
                return self.resume.pop(i)
        q = self.q
        if not q.counts[LOW]:
            return None
        if not hp or self.est is None:
            model, _ = q.first(LOW)  # type: ignore[misc]
            return q.take(LOW, model, top)
        for model in q.models_in_order(LOW):
            size = min(q.waiting_items(LOW, model), top)
            if self._padded(hp, model, size):
                return q.take(LOW, model, top)
        return None

    def _unpad(self, view: SystemView, gpu: int, model: str, size: int,
               actions: list[Action]) -> list[Action]:
        """Reset the LP batches on ``gpu`` that would slow the new HP batch beyond the
        padding bound (kernel restore by default)."""
        out: list[Action] = []
        pad = self.pad_slowdown
        for b in view.running(gpu):
            if b.priority != LOW or b.phase not in ("h2d", "compute"):
                continue
            if self._hp_slowdown(model, size, b.model, b.size) > pad:
                if any(isinstance(a, Preempt) and a.gpu == gpu and a.slot == b.slot
                       for a in actions):
                    continue
                out.append(Preempt(gpu, b.slot, self.preempt_cost_ms, self.restore))
                self.preempted += 1
                if self.preempt_cost_ms > 0:
                    self.resetting += 1
        return out
