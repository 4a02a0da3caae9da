"""``orion``: HP work on its own stream; LP admitted under a duration and resource budget.

Stands for Orion (Strati et al., EuroSys'24): fine-grained interference-aware sharing
where the high-priority client owns a stream and best-effort work is launched beside it
only when it should not hurt it: when it is short enough (a duration budget) and when its
resource profile (compute- or memory-bound) differs from that of the running HP work.
Orion decides per kernel; at our granularity it decides per batch.

- Slot 0 of each GPU (the first ``hp_slots`` slots) is the HP stream: only HP batches run
  there, FIFO, up to the run's max batch. LP batches use the other slots. With one slot
  per GPU (or ``hp_slots`` = the slots), HP and LP share them and LP goes only when no HP
  request waits; ``hp_slots`` above the slots is refused (:meth:`OrionPolicy.check_system`).
- LP duration budget: an LP batch is admitted only if its predicted solo service is at
  most ``lp_budget`` x the tightest HP deadline budget seen (deadline minus arrival); the
  batch size is the largest that fits. When no HP batch runs on that GPU, one that does
  not fit even at size 1 still goes at size 1 (otherwise heavy LP models would starve).
- Resource profile: with ``utilization.csv`` a model is compute-bound when its median SM
  utilization is at least its DRAM utilization, memory-bound otherwise, and LP work may
  co-run with running HP work only of the other kind. Bundles without counters (CPU
  bundles) use a proxy: the profiles "differ" when the ``gpulet`` predictor's full-overlap
  slowdown of the HP batch beside the LP batch is at most ``max_slowdown``.
- No deadlines predicted for HP, no drops, no preemption.

What it keeps of Orion: a dedicated HP stream, best-effort work admitted beside it under
a duration budget and only when its resource profile complements the HP work. What it
drops: Orion's per-kernel decisions and kernel profiles (we decide per batch), its
stream priorities on the device, and its per-kernel SM requirements.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterator, Sequence

from strait_sim.errors import UserError
from strait_sim.policies.base import (
    Action,
    CompletedBatch,
    Dispatch,
    PolicyContext,
    SystemView,
)
from strait_sim.policies.classqueues import ClassQueuePolicy, ClassQueues
from strait_sim.policies.estimates import (
    ServiceEstimator,
    build_predictor,
    check_max_batch,
    check_positive,
)
from strait_sim.policies.hp_work import HpWork
from strait_sim.requests import HIGH, LOW, Request


def resource_kinds(profile) -> dict[str, str] | None:  # noqa: ANN001 - a ProfileBundle
    """'compute' or 'memory' per model from utilization.csv, or None without it."""
    if not profile.has("utilization"):
        return None
    util = profile.utilization
    med = util.groupby("model")[["sm_pct", "dram_pct"]].median()
    return {str(m): ("compute" if row.sm_pct >= row.dram_pct else "memory")
            for m, row in med.iterrows()}


class OrionPolicy(ClassQueuePolicy):
    """HP stream per GPU; LP only when short and of a different resource profile."""

    name = "orion"
    summary = ("Orion-like: HP on its own stream; LP admitted only under a duration budget "
               "and when its resource profile differs from the running HP work")

    def __init__(self, hp_slots: int = 1, lp_budget: float = 0.5,
                 max_slowdown: float = 1.3, max_batch: int | None = None) -> None:
        if int(hp_slots) != hp_slots or hp_slots < 1:
            raise ValueError(f"hp_slots must be a whole number >= 1, got {hp_slots!r}")
        self.hp_slots = int(hp_slots)
        self.lp_budget = check_positive("lp_budget", lp_budget)
        self.max_slowdown = check_positive("max_slowdown", max_slowdown)
        if self.max_slowdown < 1:
            raise ValueError(f"max_slowdown must be >= 1, got {max_slowdown!r}")
        self.max_batch = check_max_batch(max_batch)

    def check_system(self, *, slots: int) -> None:
        """More HP slots than the GPU has is refused, in the one line a bad --param gets.

        hp_slots = --slots is meaningful (every slot is HP's and LP shares them when no HP
        waits, as with one slot); above it, the run behaved exactly as at --slots, so the
        value asked for was silently not the one simulated, while summary.json recorded it.
        """
        if self.hp_slots > slots:
            raise UserError(f"policy 'orion': hp_slots={self.hp_slots} exceeds --slots "
                            f"{slots} (slots per GPU); use hp_slots <= {slots} (hp_slots = "
                            "--slots: HP and LP share every slot)")

    def bind(self, ctx: PolicyContext) -> None:
        self.check_system(slots=ctx.slots_per_gpu)
        super().bind(ctx)
        self.kinds = resource_kinds(ctx.profile)
        pred = None
        if self.kinds is None and ctx.slots_per_gpu > 1:
            pred, _ = build_predictor("gpulet", ctx.profile, None)
        self.est = ServiceEstimator(ctx, pred, self.max_batch)
        self.est.online = False
        self.q = ClassQueues(ctx.models, order="arrival")
        self.shared = ctx.slots_per_gpu <= self.hp_slots  # no slot left for LP alone
        # free_at[s]: the GPUs whose slot s is free, ascending, as orion's own dispatches
        # and completions leave them (it never preempts): HP and LP slots walked apart
        self.free_at: list[list[int]] | None = None if self.shared else \
            [list(range(ctx.n_gpus)) for _ in range(ctx.slots_per_gpu)]
        # the HP work on each GPU, by slot, as orion's own dispatches and completions leave
        # it, and as a tuple in slot order (what the view's running(gpu) would give): the
        # walk past GPUs busy with HP reads a list, not the view
        self._hp_at: list[list[HpWork | None]] = [[None] * ctx.slots_per_gpu
                                                  for _ in range(ctx.n_gpus)]
        self.hp_on: list[tuple[HpWork, ...]] = [()] * ctx.n_gpus
        self.hp_budget_s: float | None = None
        self._sizes: dict[tuple[str, int, tuple[HpWork, ...]], int | None] = {}

    def params(self) -> dict:
        return {"hp_slots": self.hp_slots, "lp_budget": self.lp_budget,
                "max_slowdown": self.max_slowdown, "max_batch": self.max_batch,
                "resource_profile": "utilization" if getattr(self, "kinds", None)
                else "gpulet-slowdown-proxy"}

    def on_arrival(self, request: Request, view: SystemView) -> Sequence[Action]:
        if request.priority == HIGH:
            budget = request.deadline_s - request.arrival_s
            if self.hp_budget_s is None or budget < self.hp_budget_s:
                self.hp_budget_s = budget
                self._sizes.clear()  # the duration budget changed: sizes admitted too
        return super().on_arrival(request, view)

    # -- admission ---------------------------------------------------------------------------
    def _compatible(self, lp_model: str, lp_size: int, hp: Sequence[HpWork]) -> bool:
        for h in hp:
            if self.kinds is not None:
                if self.kinds.get(lp_model) == self.kinds.get(h.model):
                    return False
            elif self.est.pair_slowdown(h.model, h.size, lp_model, lp_size) > \
                    self.max_slowdown:
                return False
        return True

    def _lp_size(self, model: str, bmax: int, hp: tuple[HpWork, ...]) -> int | None:
        """Largest admissible LP batch size, or None. Remembered per (model, bmax, HP
        work): the answer depends on nothing else until the duration budget changes
        (the estimates are static), and under overload every decision asks again for
        the GPUs it walks past (issue 15)."""
        key = (model, bmax, hp)
        sizes = self._sizes
        if key in sizes:
            return sizes[key]
        if len(sizes) >= 1 << 16:  # a bound, should the HP work take many shapes
            sizes.clear()
        size = sizes[key] = self._lp_size_now(model, bmax, hp)
        return size

    def _lp_size_now(self, model: str, bmax: int, hp: Sequence[HpWork]) -> int | None:
        budget_ms = None if self.hp_budget_s is None else self.lp_budget * self.hp_budget_s * 1e3
        for b in range(bmax, 0, -1):
            fits = budget_ms is None or self.est.solo_service_ms(model, b) <= budget_ms
            if fits and (not hp or self._compatible(model, b, hp)):
                return b
        return 1 if not hp else None

    def on_completion(self, batch: CompletedBatch, view: SystemView) -> Sequence[Action]:
        if self.free_at is not None:
            insort(self.free_at[batch.slot], batch.gpu)
        if self._hp_at[batch.gpu][batch.slot] is not None:  # it was this batch
            self._note_hp(batch.gpu, batch.slot, None)
        return super().on_completion(batch, view)

    def _note_hp(self, gpu: int, slot: int, work: HpWork | None) -> None:
        row = self._hp_at[gpu]
        row[slot] = work
        self.hp_on[gpu] = tuple(w for w in row if w is not None)

    def _schedule(self, view: SystemView) -> list[Action]:
        q = self.q
        if not len(q):
            return []
        free = view.free_slots()
        if not free:
            return []
        if self.free_at is not None:
            return self._schedule_by_stream(view)
        actions: list[Action] = []
        for gpu, slot in free:  # shared: every slot takes HP, and LP when no HP waits
            if not len(q):  # nothing left to place
                break
            d = self._hp_batch(view, gpu, slot) if q.counts[HIGH] else \
                self._lp_batch(gpu, slot)
            if d is not None:
                actions.append(d)
        return actions

    def _schedule_by_stream(self, view: SystemView) -> list[Action]:
        """The walk over the free slots in (gpu, slot) order, done as two walks: the free
        HP slots while HP waits, then the free LP slots while LP waits, from orion's own
        record of its free slots (:attr:`free_at`). The same decisions in the same order:
        an HP slot takes only HP work and an LP slot only LP work, and a GPU's HP slots
        come before its LP slots. Without the split, each decision walked past every
        GPU's free HP slot to reach the first free LP slot, O(GPUs) (issue 15)."""
        q = self.q
        rows = self.free_at
        assert rows is not None
        placed: list[tuple[int, int, Dispatch]] = []
        if q.counts[HIGH]:
            for gpu, slot in _free_pairs(rows, range(self.hp_slots)):
                placed.append((gpu, slot, self._hp_batch(view, gpu, slot)))
                if not q.counts[HIGH]:
                    break
        if q.counts[LOW]:
            # HP work beside which nothing queued was admitted: another GPU with the same
            # HP work refuses the same queue too (until a dispatch changes the queue), so
            # the walk past the GPUs busy with HP costs a look-up each
            refused: set[tuple[HpWork, ...]] = set()
            hp_on = self.hp_on
            for gpu, slot in _free_pairs(rows, range(self.hp_slots, len(rows))):
                if hp_on[gpu] in refused:
                    continue
                d = self._lp_batch(gpu, slot)
                if d is None:
                    refused.add(hp_on[gpu])
                    continue
                placed.append((gpu, slot, d))
                refused.clear()
                if not q.counts[LOW]:
                    break
        if not placed:
            return []
        if len(placed) > 1:
            placed.sort(key=_gpu_slot)  # the walk's order: by gpu, then slot
        for gpu, slot, _ in placed:
            row = rows[slot]
            del row[bisect_left(row, gpu)]
        return [d for _, _, d in placed]

    def _hp_batch(self, view: SystemView, gpu: int, slot: int) -> Dispatch:
        """An HP batch of the first queued model on (gpu, slot) (HP is waiting), noted
        at once: the LP decisions after it on that GPU see it."""
        q = self.q
        model, _ = q.first(HIGH)  # type: ignore[misc]
        reqs = q.take(HIGH, model, self.est.max_batch)
        self._note_hp(gpu, slot, HpWork(model, min(sum(r.items for r in reqs),
                                                   view.max_batch)))
        return Dispatch(gpu, slot, reqs)

    def _lp_batch(self, gpu: int, slot: int) -> Dispatch | None:
        """A batch of the first LP model (in queue order) admissible on (gpu, slot)
        beside the GPU's HP work, or None."""
        q = self.q
        hp = self.hp_on[gpu]
        for model in q.models_in_order(LOW):
            bmax = min(self.est.max_batch, q.waiting_items(LOW, model))
            size = self._lp_size(model, bmax, hp)
            if size is not None:
                return Dispatch(gpu, slot, q.take(LOW, model, size))
        return None


def _free_pairs(rows: list[list[int]], slots: range) -> Iterator[tuple[int, int]]:
    """The (gpu, slot) pairs free in ``rows`` for the slot indices ``slots``, ordered by
    gpu then slot, lazily (a decision takes the first few)."""
    if len(slots) == 1:
        return _pairs_of(rows[slots[0]], slots[0])
    return heapq.merge(*(_pairs_of(rows[s], s) for s in slots))


def _pairs_of(row: list[int], slot: int) -> Iterator[tuple[int, int]]:
    for gpu in row:
        yield gpu, slot


def _gpu_slot(placed: tuple[int, int, Dispatch]) -> tuple[int, int]:
    return placed[0], placed[1]
