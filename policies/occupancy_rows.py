"""GPUs filed by how many batches a policy has running on them, for least-occupied-first.

A policy that places work on the least occupied GPU first would sort the free slots by
occupancy at every decision: O(free slots) of Python per arrival, about 1,200 pairs on
1,024 GPUs, where the decision usually takes the first one or two (issue 15: the cost per
request must not grow with the GPUs). Instead the policy files each GPU under its
occupancy when it changes (a dispatch, a completion), and walks the rows lazily.

Used by ``strait`` (through :class:`~strait_sim.policies.occupancy.OccupancyEstimator`),
``gpulet`` and ``clockwork``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator, Sequence


class OccupancyRows:
    """``rows[k]``: the GPUs with ``k`` batches (as the policy counts them), ascending."""

    __slots__ = ("rows", "level")

    def __init__(self, n_gpus: int, slots: int) -> None:
        self.rows: list[list[int]] = [list(range(n_gpus))] + [[] for _ in range(slots)]
        self.level = [0] * n_gpus  # the row that holds each GPU

    def move(self, gpu: int, level: int) -> None:
        """File ``gpu`` under occupancy ``level`` (from the row it was filed under, so a
        count changed behind the rows' back is put right at its next move)."""
        rows = self.rows
        row = rows[self.level[gpu]]
        del row[bisect_left(row, gpu)]
        while len(rows) <= level:
            rows.append([])
        insort(rows[level], gpu)
        self.level[gpu] = level

    def least_occupied_first(self, free: Sequence[tuple[int, int]]
                             ) -> Iterator[tuple[int, int]]:
        """:func:`least_occupied_first` over these rows."""
        return least_occupied_first(free, self.rows)


def least_occupied_first(free: Sequence[tuple[int, int]], rows: list[list[int]]
                         ) -> Iterator[tuple[int, int]]:
    """``sorted(free, key=lambda gs: occupancy[gs[0]])``, lazily and without a walk over
    the free slots: the schedule usually stops after a slot or two, and on 1,024 GPUs the
    walk past the half-occupied GPUs to the first idle one was most of a policy's cost
    (issue 15). ``rows[k]`` lists the GPUs with occupancy ``k``, ascending
    (:class:`OccupancyRows`); ``free`` is ordered by gpu then slot (the view's contract),
    so a GPU's free slots are found by bisection. Occupancies are those at the start of
    the schedule, as the sort's: a GPU that takes a batch meanwhile moves up a row, where
    it was yielded already (``seen``); one that does not stays behind the position reached
    in its row."""
    n = len(free)
    if not n:
        return
    # the view's free slots bisect on their own list (a plain sequence: bisect probes it)
    find = getattr(free, "bisect_left", None) or (lambda pair: bisect_left(free, pair))
    yielded = 0
    seen: set[int] = set()
    for row in rows:
        last = -1
        while True:
            i = bisect_right(row, last)
            if i == len(row):
                break
            gpu = last = row[i]
            if gpu in seen:
                continue
            seen.add(gpu)
            j = find((gpu,))
            while j < n:
                pair = free[j]
                if pair[0] != gpu:
                    break
                yield pair
                yielded += 1
                j += 1
            if yielded == n:
                return
