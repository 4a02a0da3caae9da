"""``triton``: Triton Inference Server's dynamic batcher with a priority queue policy.

Stands for what many users run: NVIDIA Triton with ``dynamic_batching { priority_levels: 2,
max_queue_delay_microseconds, default_queue_policy { timeout_action: REJECT,
default_timeout_microseconds } }`` and one model instance per slot. It knows nothing of
interference or of deadlines beyond the per-class queue timeout.

- Per-priority queues: a free slot takes HP work whenever a HP batch is ready; FIFO within
  a class; the oldest ready model of the class forms the batch. LP work may take a free
  slot while HP requests are still waiting for their batch to fill (in Triton each model
  batches on its own; priorities order requests, they do not idle instances).
- Dynamic batching: a batch is formed once ``max_batch`` items of that model are queued
  (Triton's preferred batch size), or once its oldest request has waited
  ``max_queue_delay_ms``; until then the slot waits (a timer brings the policy back).
- Timeouts: a request still queued ``timeout_high_ms`` / ``timeout_low_ms`` after its
  arrival is rejected (Triton's REJECT action). ``None`` (default) uses each request's own
  deadline budget (deadline minus arrival) as its timeout: what a user who sets the
  timeout to the SLO gets. Timed-out requests are found at the heads of the queues (Triton
  also checks them when it looks at the queue).

What it keeps of Triton: priority levels ordering the queue, the dynamic batcher's
preferred size and maximum queue delay, per-class timeouts with REJECT. What it drops:
Triton's per-model instance groups and model-level concurrency limits (every slot may run
any model), sequence batching, rate limiting, and response caching.
"""

from __future__ import annotations

from collections.abc import Sequence

from strait_sim.policies.base import (
    Action,
    Dispatch,
    PolicyContext,
    Reject,
    SystemView,
    WakeAt,
)
from strait_sim.policies.classqueues import ClassQueuePolicy, ClassQueues
from strait_sim.policies.estimates import check_max_batch, check_positive
from strait_sim.requests import HIGH, LOW, Request


class TritonPolicy(ClassQueuePolicy):
    """Per-priority FIFO queues, dynamic batching with a max queue delay, REJECT timeouts."""

    name = "triton"
    summary = ("Triton-like: per-priority queues, dynamic batching with a max queue delay, "
               "per-class timeout that rejects")

    def __init__(self, max_queue_delay_ms: float = 1.0, timeout_high_ms: float | None = None,
                 timeout_low_ms: float | None = None, max_batch: int | None = None) -> None:
        self.max_queue_delay_ms = check_positive("max_queue_delay_ms", max_queue_delay_ms,
                                                 allow_zero=True)
        self.timeout_ms = (
            None if timeout_high_ms is None else check_positive("timeout_high_ms",
                                                                timeout_high_ms),
            None if timeout_low_ms is None else check_positive("timeout_low_ms",
                                                               timeout_low_ms))
        self.max_batch = check_max_batch(max_batch)

    def bind(self, ctx: PolicyContext) -> None:
        super().bind(ctx)
        self.q = ClassQueues(ctx.models, order="arrival")
        self.batch_items = min(self.max_batch or ctx.max_batch, ctx.max_batch)
        self._timer: float | None = None

    def params(self) -> dict:
        return {"max_queue_delay_ms": self.max_queue_delay_ms,
                "timeout_high_ms": self.timeout_ms[HIGH], "timeout_low_ms": self.timeout_ms[LOW],
                "max_batch": self.max_batch}

    def on_timer(self, view: SystemView) -> Sequence[Action]:
        self._timer = None
        return super().on_timer(view)

    def _expired(self, req: Request, now: float) -> bool:
        t = self.timeout_ms[req.priority]
        limit = req.deadline_s if t is None else req.arrival_s + t / 1e3
        return now > limit

    def _schedule(self, view: SystemView) -> list[Action]:
        now = view.now
        q = self.q
        actions: list[Action] = []
        rejected: list[Request] = []
        for cls in (HIGH, LOW):
            if q.counts[cls]:
                heaps = q.heaps[cls]
                for model in q.models_with_work(cls):  # in the models' order
                    heap = heaps[model]
                    while heap and self._expired(heap[0][3], now):
                        rejected.append(q.pop(cls, model))
        if rejected:
            actions.append(Reject(tuple(rejected), "queue timeout"))
        free = view.free_slots()
        if not free or not len(q):
            return actions
        delay = self.max_queue_delay_ms / 1e3
        wake: float | None = None
        slots = iter(free)
        for cls in (HIGH, LOW):
            while q.counts[cls]:
                ready = None
                for model in q.models_in_order(cls):
                    head = q.head(cls, model)
                    if q.waiting_items(cls, model) >= self.batch_items or \
                            now >= head.arrival_s + delay:
                        ready = model
                        break
                    due = head.arrival_s + delay
                    wake = due if wake is None or due < wake else wake
                if ready is None:
                    break
                slot = next(slots, None)
                if slot is None:
                    return actions
                actions.append(Dispatch(slot[0], slot[1], q.take(cls, ready, self.batch_items)))
        if wake is not None and (self._timer is None or wake < self._timer):
            self._timer = wake
            actions.append(WakeAt(wake))
        return actions
