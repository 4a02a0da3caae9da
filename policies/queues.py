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
    """Heaps keyed by (class, model). ``by_class=False`` merges the classes."""

    def __init__(self, models: tuple[str, ...], order: str = "arrival",
                 by_class: bool = True) -> None:
        if order not in ("arrival", "deadline"):
            raise ValueError(f"order must be 'arrival' or 'deadline', got {order!r}")
        self.order = order
        self.by_class = by_class
        self.classes = (HIGH, LOW) if by_class else (HIGH,)
        self._heaps: dict[tuple[int, str], list[tuple[float, int, Request]]] = {
            (c, m): [] for c in self.classes for m in models}
        # the same heap lists grouped by class, so head(class) scans only that class
        self._class_heaps: dict[int, list[list]] = {
            c: [self._heaps[(c, m)] for m in models] for c in self.classes}
        self._all_heaps = list(self._heaps.values())
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def _key(self, req: Request) -> tuple[float, int, Request]:
        return (req.arrival_s if self.order == "arrival" else req.deadline_s, req.id, req)

    def push(self, req: Request) -> None:
        cls = req.priority if self.by_class else HIGH
        heapq.heappush(self._heaps[(cls, req.model)], self._key(req))
        self._count += 1

    def head(self, priority: int | None = None) -> Request | None:
        """The request that comes first (within one class, or overall)."""
        if not self._count:
            return None
        heaps = self._all_heaps if priority is None or not self.by_class \
            else self._class_heaps[priority]
        best = None
        for heap in heaps:
            if heap and (best is None or heap[0] < best):
                best = heap[0]
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
