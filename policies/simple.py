"""Shared machinery of the work-conserving queue policies (fifo, edf, priority).

Each of them fills every free slot as soon as it can, from queues ordered by one key,
with batches of one model up to the run's max batch (or ``max_batch``, the one parameter
they share with every other policy). They differ only in the queue order and in whether
the high-priority class goes strictly first.

They stand for no particular system: ``fifo`` is a plain dynamic-batching server
(arrival order, batches of one model), ``edf`` the deadline ordering of Clipper- and
Nexus-style servers without their adaptive batching or placement, ``priority`` the
simplest priority-aware server. They keep only the queue order; they predict nothing,
drop nothing and preempt nothing.
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
    RunningBatch,
    SystemView,
)
from strait_sim.policies.estimates import check_max_batch
from strait_sim.policies.queues import RequestQueues
from strait_sim.requests import HIGH, LOW, Request


class QueuePolicy(Policy):
    """Work-conserving dispatch from :class:`RequestQueues`."""

    order = "arrival"
    by_class = False
    # A class default too: a subclass whose __init__ does not call this one's still binds.
    max_batch: int | None = None

    def __init__(self, max_batch: int | None = None) -> None:
        """``max_batch``: cap on batch size (items) below the run's ``--max-batch``, as on
        every other policy (None: the run's)."""
        self.max_batch = check_max_batch(max_batch)

    def bind(self, ctx: PolicyContext) -> None:
        super().bind(ctx)
        self.queues = RequestQueues(ctx.models, order=self.order, by_class=self.by_class)
        self.batch_items = min(self.max_batch or ctx.max_batch, ctx.max_batch)

    def params(self) -> dict:
        return {"max_batch": self.max_batch}

    def waiting(self) -> int:
        return len(self.queues)

    def on_arrival(self, request: Request, view: SystemView) -> Sequence[Action]:
        queues = self.queues
        if not queues._count:
            # Nothing queued: the newcomer is the head of every order and alone in its
            # model's queue, so _fill would push it, pop it again as a batch of one and
            # put it on the first free slot. Do that without the queue (issue 15: most
            # arrivals below saturation take this path; the same actions).
            free = view.free_slots()
            if free:
                gpu, slot = free[0]
                return [Dispatch(gpu, slot, (request,))]
        queues.push(request)
        return self._fill(view)

    def on_completion(self, batch: CompletedBatch, view: SystemView) -> Sequence[Action]:
        return self._fill(view) if self.queues._count else NO_ACTIONS

    def on_preempted(self, batch: RunningBatch, view: SystemView) -> Sequence[Action]:
        for req in batch.requests:
            self.queues.push(req)
        return self._fill(view)

    def on_timer(self, view: SystemView) -> Sequence[Action]:
        return self._fill(view)

    def _fill(self, view: SystemView) -> list[Action]:
        queues = self.queues
        if not queues._count:
            return []
        actions: list[Action] = []
        max_batch = self.batch_items
        for gpu, slot in view.free_slots():
            batch = self._next_batch(max_batch)
            if not batch:
                break
            actions.append(Dispatch(gpu, slot, batch))
            if not queues._count:
                break
        return actions

    def _next_batch(self, max_items: int) -> tuple[Request, ...]:
        classes = (HIGH, LOW) if self.by_class else (None,)
        for cls in classes:
            head = self.queues.head(cls)
            if head is not None:
                return self.queues.pop_batch(head.model, max_items,
                                             cls if self.by_class else None)
        return ()
