"""The one read-only :class:`~strait_sim.policies.base.SystemView`, for both clocks.

It shows what a scheduler on a real system could know: the time, which slots are free,
which batches run where and since when (as read-only :class:`~strait_sim.driver.batch.Batch`
objects, with their observed phase), and how many copies are active on each link. It
never shows the device's truth (sampled solo times, work left, rates).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strait_sim.driver.batch import Batch
    from strait_sim.driver.driver import Driver


class FreeSlots:
    """The driver's idle (gpu, slot) pairs, ordered by gpu then slot: a read-only view of
    its own sorted list, not a copy. A copy per call cost O(GPUs) on every arrival (about
    1,200 pairs at 1,024 GPUs) where a policy usually takes the first one or two. It
    reads as the list does at the moment it is read (the driver changes the list only
    while it applies actions, after the policy has returned); ``list(view.free_slots())``
    keeps a snapshot."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: list[tuple[int, int]]) -> None:
        self._pairs = pairs

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index):  # noqa: ANN001, ANN204 (an int or a slice, as a list)
        return self._pairs[index]

    def __contains__(self, pair: object) -> bool:
        return pair in self._pairs

    def bisect_left(self, pair: tuple[int, ...]) -> int:
        """``bisect.bisect_left(self, pair)``, on the list itself: the index of the first
        free pair not below ``pair`` (``(gpu,)``: the GPU's first free slot, if any).
        Bisecting the view through ``__getitem__`` costs a Python call per probe."""
        return bisect_left(self._pairs, pair)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FreeSlots):
            other = other._pairs
        return self._pairs == other

    __hash__ = None  # type: ignore[assignment]  (mutable underneath, like a list)

    def __repr__(self) -> str:
        return f"FreeSlots({self._pairs!r})"


class DriverView:
    """What a policy sees, in simulation and live alike."""

    __slots__ = ("_clock", "_slots", "_free", "_device", "n_gpus", "slots_per_gpu",
                 "max_batch")

    def __init__(self, driver: Driver) -> None:
        self._clock = driver.clock
        self._slots = driver.slots
        self._free = FreeSlots(driver.free)
        self._device = driver.device
        self.n_gpus = driver.config.gpus
        self.slots_per_gpu = driver.config.slots
        self.max_batch = driver.config.max_batch

    @property
    def now(self) -> float:
        return self._clock._now

    def free_slots(self) -> FreeSlots:
        """Idle (gpu, slot) pairs, ordered by gpu then slot (a read-only sequence: index
        it, iterate it, take its length; see :class:`FreeSlots`)."""
        return self._free

    def running(self, gpu: int | None = None) -> list[Batch]:
        """Batches on slots (of one gpu, or all), ordered by gpu then slot."""
        rows = self._slots if gpu is None else [self._slots[gpu]]
        return [b for row in rows for b in row if b is not None and b._phase != "reset"]

    def transfers_in_flight(self, gpu: int, direction: str) -> int:
        """Copies active on this gpu's link in ``direction`` ('h2d' or 'd2h')."""
        return self._device.transfers_in_flight(gpu, direction)
