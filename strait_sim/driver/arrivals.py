"""Where requests come from: an open-loop stream of chunks, or closed-loop sessions.

Requests are numbered 0, 1, 2, ... as they are *registered*: a whole open-loop chunk at
once (its static columns are written into the records in one vectorised step), or a
closed-loop client's next request when the session makes it. The clock asks ``next_t``
and calls :meth:`release` when that time has come; the source then hands the driver a
:class:`~strait_sim.requests.Request`. No SimPy event is made per arrival.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator

import numpy as np

from strait_sim.driver.rules import check_items
from strait_sim.engine.records import RequestRecords
from strait_sim.requests import Request, RequestChunk

INF = math.inf


class Arrivals:
    """The next arrival's time, and its release into the driver."""

    def __init__(self, records: RequestRecords, models: tuple[str, ...], max_batch: int,
                 deliver: Callable[[Request], None]) -> None:
        self.records = records
        self.models = models
        self.model_index = {m: i for i, m in enumerate(models)}
        self.max_batch = max_batch
        self.deliver = deliver
        self.next_id = 0
        self.released = 0
        self.next_t = INF
        self._chunks: Iterator[RequestChunk] | None = None
        # open stream: the current chunk as Python lists (cheap per-element reads)
        self._arr: list[float] = []
        self._pos = 0
        self._base = 0
        # closed loop: (time, id, model, priority, deadline, items)
        self._heap: list[tuple[float, int, str, int, float, int]] = []

    # -- registration -----------------------------------------------------------------------
    def register(self, chunk: RequestChunk) -> tuple[int, np.ndarray]:
        """Give a chunk's requests ids and write their static columns; (first id, model idx)."""
        start = self.next_id
        n = len(chunk)
        check_items(chunk.items, start, self.max_batch)
        self.records.ensure(start + n)
        remap = np.array([self.model_index[m] for m in chunk.models], dtype=np.int16)
        model_idx = remap[chunk.model]
        for name, values in (("arrival_s", chunk.arrival_s), ("deadline_s", chunk.deadline_s),
                             ("model", model_idx), ("priority", chunk.priority),
                             ("items", chunk.items)):
            self._write_slice(name, start, values)
        self.next_id += n
        return start, model_idx

    def _write_slice(self, name: str, start: int, values: np.ndarray) -> None:
        pos, n = 0, len(values)
        while pos < n:
            arr, off = self.records.column(name, start + pos)
            take = min(n - pos, len(arr) - off)
            arr[off:off + take] = values[pos:pos + take]
            pos += take

    # -- open loop ----------------------------------------------------------------------------
    def open_stream(self, chunks: Iterator[RequestChunk]) -> None:
        self._chunks = chunks
        self._load_chunk()

    def _load_chunk(self) -> None:
        while True:
            chunk = next(self._chunks, None) if self._chunks is not None else None
            if chunk is None:
                self._chunks = None
                self._arr = []
                self._update_next()
                return
            if len(chunk) == 0:
                continue
            start, model_idx = self.register(chunk)
            names = self.models
            self._arr = chunk.arrival_s.tolist()
            self._dl = chunk.deadline_s.tolist()
            self._prio = chunk.priority.tolist()
            self._items = chunk.items.tolist()
            self._mname = [names[i] for i in model_idx.tolist()]
            self._base = start
            self._pos = 0
            self._update_next()
            return

    # -- closed loop --------------------------------------------------------------------------
    def push(self, chunk: RequestChunk | None) -> None:
        """Requests a closed-loop session made (each at its own future time)."""
        if chunk is None or len(chunk) == 0:
            return
        start, model_idx = self.register(chunk)
        names = self.models
        for i, (t, p, d, k) in enumerate(zip(chunk.arrival_s.tolist(),
                                              chunk.priority.tolist(),
                                              chunk.deadline_s.tolist(),
                                              chunk.items.tolist(), strict=True)):
            heapq.heappush(self._heap, (t, start + i, names[int(model_idx[i])], p, d, k))
        self._update_next()

    # -- release ------------------------------------------------------------------------------
    def _update_next(self) -> None:
        t_open = self._arr[self._pos] if self._pos < len(self._arr) else INF
        t_closed = self._heap[0][0] if self._heap else INF
        self.next_t = t_open if t_open <= t_closed else t_closed

    def release(self) -> None:
        """Hand the next request to the driver (open stream first on equal times)."""
        pos = self._pos
        arr = self._arr
        if pos < len(arr) and (not self._heap or arr[pos] <= self._heap[0][0]):
            req = Request(self._base + pos, self._mname[pos], self._prio[pos], arr[pos],
                          self._dl[pos], self._items[pos])
            pos += 1
            self._pos = pos
            if pos < len(arr):
                if not self._heap:
                    self.next_t = arr[pos]
                else:
                    self._update_next()
            else:
                self._load_chunk()
        else:
            t, rid, model, prio, dl, items = heapq.heappop(self._heap)
            req = Request(rid, model, prio, t, dl, items)
            self._update_next()
        self.released += 1
        self.deliver(req)

    def pending_ids(self) -> list[int]:
        """Registered but not released yet (an interrupted live run)."""
        out = [self._base + i for i in range(self._pos, len(self._arr))]
        out.extend(rid for _, rid, *_ in self._heap)
        return out
