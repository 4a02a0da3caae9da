"""``gpulet``: co-location admitted by a static, coarse linear interference model.

Stands for GPUlet (Choi et al., USENIX ATC'22): spatial sharing of a GPU between models,
with a co-location allowed only when a linear interference model, fitted once offline on
solo utilization features, predicts that every co-located task still meets its SLO. Here
the model is the ``gpulet`` predictor (:mod:`strait_sim.predictors.gpulet`): the worst
pairwise slowdown applied to the *whole* latency, as if the co-runners overlapped from
start to end; it is never updated online.

- Order: HP before LP with EDF within a class (``priority_aware=True``), or EDF over all
  requests (``False``). Each free slot gets a batch of the first model in that order.
- On an idle GPU the batch is the largest size whose predicted service (solo compute plus
  copies) meets its earliest deadline (the largest allowed when none does).
- On a GPU that already runs batches, a batch of size b is co-located only if the model
  predicts that it meets its own earliest deadline beside them *and* that every running
  batch predicted on time stays on time once slowed by it (remaining time x slowdown).
  The largest such b is chosen; if even b = 1 fails, the slot is left idle until a batch
  completes (GPUlet would rather not co-locate than break SLOs).
- No drops, no preemption.

What it keeps of GPUlet: co-location admitted only when a static linear interference
model, fitted offline, says every co-located task stays on time. What it drops: GPUlet's
spatial partitioning (MPS resource percentages per gpulet, chosen by its scheduler) and its
reorganisation of partitions over time: a slot here is a whole-GPU stream, so the model
predicts slowdowns of unpartitioned co-location, and a CPU bundle has no utilization
counters, so learned intensities stand in for GPUlet's L2 and DRAM features.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from strait_sim.policies.base import (
    Action,
    CompletedBatch,
    Dispatch,
    PolicyContext,
    RunningBatch,
    SystemView,
)
from strait_sim.policies.classqueues import ClassQueuePolicy, ClassQueues
from strait_sim.policies.estimates import (
    Believed,
    ServiceEstimator,
    build_predictor,
    check_max_batch,
)
from strait_sim.policies.occupancy_rows import OccupancyRows
from strait_sim.predictors.base import CoRunner
from strait_sim.requests import HIGH, LOW


class GpuletPolicy(ClassQueuePolicy):
    """Co-locate only when the static gpulet model predicts every deadline holds."""

    name = "gpulet"
    summary = ("GPUlet-like: co-locates only when a static linear interference model "
               "predicts that all deadlines hold")

    def __init__(self, predictor: str = "gpulet", priority_aware: bool = True,
                 max_batch: int | None = None) -> None:
        if not isinstance(predictor, str) or not predictor:
            raise ValueError(f"predictor must be a predictor name, got {predictor!r}")
        self.predictor = predictor
        self.priority_aware = bool(priority_aware)
        self.max_batch = check_max_batch(max_batch)

    def bind(self, ctx: PolicyContext) -> None:
        super().bind(ctx)
        pred, self.predictor_used = build_predictor(self.predictor, ctx.profile, None)
        self.est = ServiceEstimator(ctx, pred, self.max_batch)
        self.est.online = False  # static by design: never updated
        self.q = ClassQueues(ctx.models, order="deadline", by_class=self.priority_aware)
        self.beliefs: dict[int, tuple[int, Believed]] = {}
        self.by_gpu: list[list[Believed]] = [[] for _ in range(ctx.n_gpus)]
        # the GPUs filed by len(by_gpu[g]): the least occupied first without a sort of
        # every free slot per decision (issue 15)
        self.occupancy = OccupancyRows(ctx.n_gpus, ctx.slots_per_gpu) \
            if ctx.n_gpus > 1 else None

    def params(self) -> dict:
        return {"predictor": self.predictor, "priority_aware": self.priority_aware,
                "max_batch": self.max_batch}

    def on_completion(self, batch: CompletedBatch, view: SystemView) -> Sequence[Action]:
        self._forget(batch.requests[0].id)
        return super().on_completion(batch, view)

    def on_preempted(self, batch: RunningBatch, view: SystemView) -> Sequence[Action]:
        self._forget(batch.requests[0].id)
        return super().on_preempted(batch, view)

    def _forget(self, key: int) -> None:
        hit = self.beliefs.pop(key, None)
        if hit is not None:
            row = self.by_gpu[hit[0]]
            row[:] = [c for c in row if c is not hit[1]]
            if self.occupancy is not None:
                self.occupancy.move(hit[0], len(row))

    # -- predictions ---------------------------------------------------------------------------
    def _service(self, model: str, size: int, co: list[Believed]) -> float:
        est = self.est
        solo = est.solo[model][size]
        cos = [CoRunner(c.model, c.size, solo) for c in co]
        return est.h2d_ms(model, size) + est.compute_ms(model, size, cos) + \
            est.d2h_ms(model, size)

    def _others_hold(self, now: float, co: list[Believed], model: str, size: int) -> bool:
        for c in co:
            if c.end_s > c.deadline_s:
                continue
            s = self.est.pair_slowdown(c.model, c.size, model, size)
            if now + (c.end_s - now) * s > c.deadline_s:
                return False
        return True

    def _choose(self, now: float, co: list[Believed], model: str, bmax: int,
                deadline: float) -> tuple[int, float] | None:
        """Largest admissible batch size and its predicted service (ms), or None."""
        for b in range(bmax, 0, -1):
            svc = self._service(model, b, co)
            if now + svc / 1e3 <= deadline and self._others_hold(now, co, model, b):
                return b, svc
        if not co:  # idle GPU: the head is late whatever the size; serve the most
            return bmax, self._service(model, bmax, co)
        return None

    def _least_occupied_first(self, free: Sequence[tuple[int, int]]
                              ) -> Iterable[tuple[int, int]]:
        """The free slots, least occupied GPU first: ``sorted(free, key=lambda gs:
        len(self.by_gpu[gs[0]]))``, lazily, from :attr:`occupancy`."""
        occupancy = self.occupancy
        return free if occupancy is None else occupancy.least_occupied_first(free)

    # -- scheduling --------------------------------------------------------------------------
    def _schedule(self, view: SystemView) -> list[Action]:
        q = self.q
        actions: list[Action] = []
        if not len(q):
            return actions
        free = view.free_slots()
        if not free:
            return actions
        now = view.now
        classes = (HIGH, LOW) if self.priority_aware else (HIGH,)
        refused: set[int] = set()
        for gpu, slot in self._least_occupied_first(free):
            if not len(q):  # nothing left to place: every other slot would be refused
                break
            if gpu in refused:
                continue
            co = self.by_gpu[gpu]
            pick = None
            for cls in classes:
                first = q.first(cls)
                if first is not None:
                    bmax = min(self.est.max_batch, q.waiting_items(cls, first[0]))
                    found = self._choose(now, co, first[0], bmax, first[1].deadline_s)
                    if found is not None:
                        pick = (cls, first[0], *found)
                    break  # strict order: a refused head is not overtaken
            if pick is None:
                refused.add(gpu)
                continue
            cls, model, size, svc = pick
            reqs = q.take(cls, model, size)
            size = min(sum(r.items for r in reqs), view.max_batch)
            for c in co:  # GPUlet's belief: the running batches stretch by the slowdown
                s = self.est.pair_slowdown(c.model, c.size, model, size)
                c.end_s = now + (c.end_s - now) * s
            end = now + svc / 1e3
            bel = Believed(model, size, min(r.priority for r in reqs), now, end, end,
                           reqs[0].deadline_s)
            self.beliefs[reqs[0].id] = (gpu, bel)
            co.append(bel)
            if self.occupancy is not None:
                self.occupancy.move(gpu, len(co))
            actions.append(Dispatch(gpu, slot, reqs, svc))
        return actions
