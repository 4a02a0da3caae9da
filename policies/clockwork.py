"""``clockwork``: one batch per GPU at a time, predicted from recent measurements.

Stands for Clockwork (Gujarati et al., OSDI'20): predictability by running one batch at a
time on each GPU (no co-location, hence no interference to predict), latency estimates
taken from a window of recent measurements of the same (model, batch size), and requests
that cannot make their deadline dropped before they use the GPU.

- A GPU takes a new batch only when nothing runs on it; the other slots stay unused.
- Estimate of (model, b): the ``quantile`` of the last ``window`` observed service times
  (dispatch to end of D2H) of batches of that model and size; before any observation,
  the profile's solo median plus the predicted copies.
- Order: earliest deadline first over all queued requests (``priority_aware=False``,
  Clockwork has no classes: a HP request is only a tighter deadline), or HP before LP
  with EDF within a class (``priority_aware=True``).
- A request whose deadline is before ``now + estimate(model, 1)`` is dropped; the batch
  is the largest size whose estimate meets the earliest deadline in it.

What it keeps of Clockwork: one batch at a time per GPU, estimates from a window of
recent measurements, dropping requests that cannot make their deadline, the largest
batch that meets it. What it drops: Clockwork's controller/worker split and its
ahead-of-time action schedule (load, infer, unload with exact timing windows), model
loading and GPU memory management (every model is resident), and its cross-GPU
placement policy.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from strait_sim.policies.base import (
    Action,
    CompletedBatch,
    Dispatch,
    Drop,
    PolicyContext,
    SystemView,
)
from strait_sim.policies.classqueues import ClassQueuePolicy, ClassQueues
from strait_sim.policies.estimates import (
    ServiceEstimator,
    check_fraction,
    check_max_batch,
)
from strait_sim.policies.occupancy_rows import OccupancyRows
from strait_sim.requests import HIGH, LOW, Request


class ClockworkPolicy(ClassQueuePolicy):
    """One batch per GPU, EDF, estimates from a window of recent measurements, drops."""

    name = "clockwork"
    summary = ("Clockwork-like: one batch per GPU at a time, estimates from recent "
               "measurements, drops what cannot make its deadline")

    def __init__(self, window: int = 10, quantile: float = 0.99,
                 priority_aware: bool = False, max_batch: int | None = None) -> None:
        if int(window) != window or window < 1:
            raise ValueError(f"window must be a whole number >= 1, got {window!r}")
        self.window = int(window)
        self.quantile = check_fraction("quantile", quantile)
        self.priority_aware = bool(priority_aware)
        self.max_batch = check_max_batch(max_batch)

    def bind(self, ctx: PolicyContext) -> None:
        super().bind(ctx)
        self.est = ServiceEstimator(ctx, None, self.max_batch)
        self.q = ClassQueues(ctx.models, order="deadline", by_class=self.priority_aware)
        self.samples: dict[tuple[str, int], deque[float]] = {}
        # the GPUs filed by how many of its batches run there (0 or 1: one at a time):
        # row 0 is the idle GPUs, ascending, without a walk over every slot (issue 15)
        self.occupancy = OccupancyRows(ctx.n_gpus, ctx.slots_per_gpu)
        self._estimate: dict[tuple[str, int], float] = {
            (m, b): self.est.solo_service_ms(m, b)
            for m in ctx.models for b in range(1, self.est.max_batch + 1)}

    def params(self) -> dict:
        return {"window": self.window, "quantile": self.quantile,
                "priority_aware": self.priority_aware, "max_batch": self.max_batch}

    def estimate_ms(self, model: str, size: int) -> float:
        return self._estimate[(model, size)]

    # -- events ------------------------------------------------------------------------------
    def on_completion(self, batch: CompletedBatch, view: SystemView) -> Sequence[Action]:
        occupancy = self.occupancy
        occupancy.move(batch.gpu, occupancy.level[batch.gpu] - 1)
        if not batch.failed:
            key = (batch.model, batch.size)
            window = self.samples.get(key)
            if window is None:
                window = self.samples[key] = deque(maxlen=self.window)
            window.append(batch.service_ms)
            self._estimate[key] = window_quantile(window, self.quantile)
        return super().on_completion(batch, view)

    # -- scheduling --------------------------------------------------------------------------
    def _schedule(self, view: SystemView) -> list[Action]:
        now = view.now
        q = self.q
        actions: list[Action] = []
        if not len(q):
            return actions
        # GPUs where none of its batches runs (clockwork never preempts, so every slot
        # of such a GPU is free), ascending
        idle = self.occupancy.rows[0]
        if not idle:
            return actions
        dropped: list[Request] = []
        classes = (HIGH, LOW) if self.priority_aware else (HIGH,)
        for cls in classes:
            if not q.counts[cls]:
                continue
            heaps = q.heaps[cls]
            for model in q.models_with_work(cls):  # in the models' order, as a full walk
                heap = heaps[model]
                limit = now + self._estimate[(model, 1)] / 1e3
                while heap and heap[0][3].deadline_s < limit:
                    dropped.append(q.pop(cls, model))
        if dropped:
            actions.append(Drop(tuple(dropped), "cannot meet its deadline"))
        placed: list[int] = []
        for gpu in idle:  # filed under row 1 after the walk, not during it
            pick = None
            for cls in classes:
                pick = q.first(cls)
                if pick is not None:
                    break
            if pick is None:
                break
            model, head = pick
            bmax = min(self.est.max_batch, q.waiting_items(cls, model))
            size = 1
            for b in range(bmax, 1, -1):
                if now + self._estimate[(model, b)] / 1e3 <= head.deadline_s:
                    size = b
                    break
            reqs = q.take(cls, model, size)
            actions.append(Dispatch(gpu, 0, reqs,  # idle: slot 0 is its lowest free slot
                                    self._estimate[(model, min(size, self.est.max_batch))]))
            placed.append(gpu)
        for gpu in placed:
            self.occupancy.move(gpu, 1)
        return actions


def window_quantile(window: Sequence[float], q: float) -> float:
    """``float(np.quantile(window, q))`` (numpy's default ``linear`` method), the same
    float, in plain Python: numpy's machinery, for a window of ten on every completion,
    was most of clockwork's cost (docs/benchmarks.md, fourth pass), where the arithmetic
    is a sort and one interpolation. It follows numpy's
    steps: the virtual index ``(n - 1) * q``, the neighbours around its floor (the last
    value at or past the end), and numpy's two-sided lerp. An empty window, or one
    holding a NaN or an infinity, is left to numpy (its orderings and inf - inf)."""
    xs = sorted(window)
    n = len(xs)
    if n == 0 or not all(map(math.isfinite, xs)):
        return float(np.quantile(np.fromiter(window, float, n), q))
    virtual = (n - 1) * q
    if virtual >= n - 1:
        return xs[-1]
    lo = math.floor(virtual)
    t = virtual - lo
    a, b = xs[lo], xs[lo + 1]
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t
