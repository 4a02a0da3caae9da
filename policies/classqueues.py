"""Per-(class, model) request heaps for the policies that pick batch sizes themselves.

:mod:`strait_sim.policies.queues` serves the simple policies; the policies of this issue
need a little more, cheaply: the head of one (class, model) heap without popping it, the
number of *items* waiting in it (to choose a batch size before forming the batch), the
model whose head comes first in a class, and re-queueing preempted victims at the *front*
of their queue (REEF restarts them first). Entries are ``(rank, key, id, request)`` with
rank 0 for re-queued victims and 1 otherwise, so that ties break by request id and runs
stay deterministic.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence

from strait_sim.policies.base import (
    NO_ACTIONS,
    Action,
    CompletedBatch,
    Policy,
    RunningBatch,
    SystemView,
)
from strait_sim.policies.queues import pop_items
from strait_sim.requests import HIGH, LOW, Request

Entry = tuple[int, float, int, Request]


class ClassQueues:
    """Heaps by (class, model), ordered by deadline or by arrival.

    ``by_class=False`` keeps one class (everything is queued as HIGH): for policies that
    ignore priorities.
    """

    def __init__(self, models: tuple[str, ...], order: str = "deadline",
                 by_class: bool = True) -> None:
        if order not in ("deadline", "arrival"):
            raise ValueError(f"order must be 'deadline' or 'arrival', got {order!r}")
        self.models = tuple(models)
        self.by_deadline = order == "deadline"
        self.by_class = by_class
        self.heaps: tuple[dict[str, list[Entry]], dict[str, list[Entry]]] = (
            {m: [] for m in models}, {m: [] for m in models})
        self.items: tuple[dict[str, int], dict[str, int]] = (
            dict.fromkeys(models, 0), dict.fromkeys(models, 0))
        self.counts = [0, 0]

    def __len__(self) -> int:
        return self.counts[0] + self.counts[1]

    def push(self, req: Request, *, front: bool = False) -> None:
        cls = req.priority if self.by_class else HIGH
        key = req.deadline_s if self.by_deadline else req.arrival_s
        heapq.heappush(self.heaps[cls][req.model], (0 if front else 1, key, req.id, req))
        self.items[cls][req.model] += req.items
        self.counts[cls] += 1

    def head(self, cls: int, model: str) -> Request | None:
        heap = self.heaps[cls][model]
        return heap[0][3] if heap else None

    def first(self, cls: int) -> tuple[str, Request] | None:
        """(model, request) of the heap whose head comes first in class ``cls``."""
        if not self.counts[cls]:
            return None
        best: Entry | None = None
        best_model = ""
        for model, heap in self.heaps[cls].items():
            if heap and (best is None or heap[0] < best):
                best = heap[0]
                best_model = model
        assert best is not None
        return best_model, best[3]

    def models_in_order(self, cls: int) -> list[str]:
        """Models with waiting requests of class ``cls``, heads first-come first."""
        if not self.counts[cls]:
            return []
        heads = sorted((h[0], m) for m, h in self.heaps[cls].items() if h)
        return [m for _, m in heads]

    def waiting_items(self, cls: int, model: str) -> int:
        return self.items[cls][model]

    def pop(self, cls: int, model: str) -> Request:
        req = heapq.heappop(self.heaps[cls][model])[3]
        self.items[cls][model] -= req.items
        self.counts[cls] -= 1
        return req

    def take(self, cls: int, model: str, max_items: int) -> tuple[Request, ...]:
        """Pop requests of one heap in order, up to ``max_items`` items (at least one)."""
        out, items = pop_items(self.heaps[cls][model], max_items, 3)
        self.items[cls][model] -= items
        self.counts[cls] -= len(out)
        return out

    def __iter__(self) -> Iterator[Request]:
        for cls in (HIGH, LOW):
            for heap in self.heaps[cls].values():
                for entry in heap:
                    yield entry[3]


CLASSES = (HIGH, LOW)


class ClassQueuePolicy(Policy):
    """Base of the policies that keep a :class:`ClassQueues` ``q`` and make every decision
    in ``_schedule(view)``: queue on arrival (and decide only if a slot is free), decide
    again on every completion and timer, and put preempted victims back at the front.
    Subclasses override a hook only to do something more before deciding."""

    q: ClassQueues

    def waiting(self) -> int:
        return len(self.q)

    def on_arrival(self, request: Request, view: SystemView) -> Sequence[Action]:
        self.q.push(request)
        return self._schedule(view) if view.free_slots() else NO_ACTIONS

    def on_completion(self, batch: CompletedBatch, view: SystemView) -> Sequence[Action]:
        return self._schedule(view)

    def on_timer(self, view: SystemView) -> Sequence[Action]:
        return self._schedule(view)

    def on_preempted(self, batch: RunningBatch, view: SystemView) -> Sequence[Action]:
        for r in batch.requests:
            self.q.push(r, front=True)
        return self._schedule(view)

    def _schedule(self, view: SystemView) -> list[Action]:
        raise NotImplementedError
