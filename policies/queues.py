"""Per-(class, model) request queues with O(log n) push/pop, shared by simple policies.

Ordering is by a key (arrival time for FIFO, deadline for EDF), ties broken by request id
so that runs are deterministic. Batches are formed from the queue of one model, up to
``max_items`` items, in key order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from strait_sim.requests import HIGH, LOW, Request


def pop_items(heap: list, max_items: int, at: int) -> tuple[tuple[Request, ...], int]:
    """Pop requests from ``heap`` in order (the request is entry[``at``]) while they fit in
    ``max_items`` items; always at least one if the heap is not empty. Returns the
    requests and their items. Shared by :class:`RequestQueues` and ``ClassQueues``."""
    out: list[Request] = []
    items = 0
    while heap:
        nxt = heap[0][at]
        if out and items + nxt.items > max_items:
            break
        heapq.heappop(heap)
        out.append(nxt)
        items += nxt.items
        if items >= max_items:
            break
    return tuple(out), items


class RequestQueues:
    """Heaps keyed by (class, model). ``by_class=False`` merges the classes.

    The head of a class (the request that comes first among all its models) is the top
    of one more heap per class, ``_order``, holding every queued request's entry in key
    order; entries of requests since taken in a batch are dropped lazily when they reach
    the top (the entry at the top is current exactly when it is also its model heap's
    top). So ``head`` costs O(1) amortised instead of a scan of every model's heap
    (issue 15: per-request cost flat from 6 to 100 models), with the same answer.
    """

    def __init__(self, models: tuple[str, ...], order: str = "arrival",
                 by_class: bool = True) -> None:
        if order not in ("arrival", "deadline"):
            raise ValueError(f"order must be 'arrival' or 'deadline', got {order!r}")
        self.order = order
        self.by_arrival = order == "arrival"
        self.by_class = by_class
        self.classes = (HIGH, LOW) if by_class else (HIGH,)
        self._heaps: dict[tuple[int, str], list[tuple[float, int, Request]]] = {
            (c, m): [] for c in self.classes for m in models}
        # per class: model -> the same heap lists, and the class's lazy order heap
        self._by_model: dict[int, dict[str, list]] = {
            c: {m: self._heaps[(c, m)] for m in models} for c in self.classes}
        self._order: dict[int, list[tuple[float, int, Request]]] = {
            c: [] for c in self.classes}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, req: Request) -> None:
        cls = req.priority if self.by_class else HIGH
        entry = (req.arrival_s if self.by_arrival else req.deadline_s, req.id, req)
        heapq.heappush(self._by_model[cls][req.model], entry)
        heapq.heappush(self._order[cls], entry)
        self._count += 1

    def _top(self, cls: int) -> tuple[float, int, Request] | None:
        """The first current entry of class ``cls`` (stale entries above it dropped)."""
        order = self._order[cls]
        heaps = self._by_model[cls]
        while order:
            entry = order[0]
            heap = heaps[entry[2].model]
            if heap and heap[0][1] == entry[1]:
                return entry
            heapq.heappop(order)
        return None

    def head(self, priority: int | None = None) -> Request | None:
        """The request that comes first (within one class, or overall)."""
        if not self._count:
            return None
        if priority is not None and self.by_class:
            entry = self._top(priority)
            return entry[2] if entry is not None else None
        best = None
        for cls in self.classes:
            entry = self._top(cls)
            if entry is not None and (best is None or entry < best):
                best = entry
        return best[2] if best is not None else None

    def pop_batch(self, model: str, max_items: int, priority: int | None = None
                  ) -> tuple[Request, ...]:
        """Pop up to ``max_items`` items of ``model`` in key order (one class, or the
        merged queue). Always returns at least one request when one is queued, even if
        its items exceed ``max_items``."""
        cls = HIGH if not self.by_class else priority
        if cls is None:
            raise ValueError("priority is required when queues are split by class")
        out, _ = pop_items(self._heaps[(cls, model)], max_items, 2)
        self._count -= len(out)
        return out

    def __iter__(self) -> Iterator[Request]:
        for heap in self._heaps.values():
            for entry in heap:
                yield entry[2]
