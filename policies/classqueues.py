"""Per-(class, model) request heaps for the policies that pick batch sizes themselves.

:mod:`strait_sim.policies.queues` serves the simple policies; the policies of this issue
need a little more, cheaply: the head of one (class, model) heap without popping it, the
number of *items* waiting in it (to choose a batch size before forming the batch), the
model whose head comes first in a class, and re-queueing preempted victims at the *front*
of their queue (REEF restarts them first). Entries are ``(rank, key, id, request)`` with
rank 0 for re-queued victims and 1 otherwise, so that ties break by request id and runs
stay deterministic.

The models whose heap of a class is not empty are kept (``_busy``), so that the head of
a class, the models in head order and the models with work cost time in the models that
have work, not in all models (issue 15: per-request cost flat from 6 to 100 models).
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
        # per class: the models whose heap is not empty (a dict as an insertion-ordered
        # set), and each model's place in ``models`` (to list them in that order)
        self._busy: tuple[dict[str, None], dict[str, None]] = ({}, {})
        self._rank = {m: i for i, m in enumerate(self.models)}

    def __len__(self) -> int:
        return self.counts[0] + self.counts[1]

    def push(self, req: Request, *, front: bool = False) -> None:
        cls = req.priority if self.by_class else HIGH
        key = req.deadline_s if self.by_deadline else req.arrival_s
        heap = self.heaps[cls][req.model]
        if not heap:
            self._busy[cls][req.model] = None
        heapq.heappush(heap, (0 if front else 1, key, req.id, req))
        self.items[cls][req.model] += req.items
        self.counts[cls] += 1

    def head(self, cls: int, model: str) -> Request | None:
        heap = self.heaps[cls][model]
        return heap[0][3] if heap else None

    def first(self, cls: int) -> tuple[str, Request] | None:
        """(model, request) of the heap whose head comes first in class ``cls``."""
        busy = self._busy[cls]
        if not busy:
            return None
        heaps = self.heaps[cls]
        best: Entry | None = None
        best_model = ""
        for model in busy:
            head = heaps[model][0]
            if best is None or head < best:
                best = head
                best_model = model
        assert best is not None
        return best_model, best[3]

    def models_in_order(self, cls: int) -> list[str]:
        """Models with waiting requests of class ``cls``, heads first-come first."""
        busy = self._busy[cls]
        if not busy:
            return []
        heaps = self.heaps[cls]
        if len(busy) == 1:
            return list(busy)
        heads = sorted((heaps[m][0], m) for m in busy)
        return [m for _, m in heads]

    def models_with_work(self, cls: int) -> list[str]:
        """Models with waiting requests of class ``cls``, in the order of ``models`` (a
        new list: popping while walking it is safe)."""
        busy = self._busy[cls]
        if len(busy) < 2:
            return list(busy)
        return sorted(busy, key=self._rank.__getitem__)

    def waiting_items(self, cls: int, model: str) -> int:
        return self.items[cls][model]

    def pop(self, cls: int, model: str) -> Request:
        heap = self.heaps[cls][model]
        req = heapq.heappop(heap)[3]
        if not heap:
            del self._busy[cls][model]
        self.items[cls][model] -= req.items
        self.counts[cls] -= 1
        return req

    def take(self, cls: int, model: str, max_items: int) -> tuple[Request, ...]:
        """Pop requests of one heap in order, up to ``max_items`` items (at least one)."""
        heap = self.heaps[cls][model]
        out, items = pop_items(heap, max_items, 3)
        if not heap and out:
            del self._busy[cls][model]
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
