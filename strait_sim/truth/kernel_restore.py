"""How much of a preempted batch's work survives a kernel-granularity reset.

REEF (OSDI 2022) preempts best-effort work by resetting only the kernels in flight:
kernels that completed keep their results, and the reset ones are re-launched. So when a
batch is preempted after a fraction ``done`` of its solo work, the work kept is the sum
of the kernels that ended before that point; the kernel running at that point is lost.

The kernel sequence of (model, batch) comes from ``kernels.csv`` (the nearest measured
batch size of the model, durations normalised to fractions of the whole). A bundle
without kernels for the model falls back to ``default_kernels`` equal kernels: a CNN or
transformer forward pass launches tens to hundreds of kernels, and 50 is our documented
middle value (a parameter, not a measurement).
"""

from __future__ import annotations

import bisect

import numpy as np

from strait_sim.profile_bundle import ProfileBundle

DEFAULT_KERNELS = 50


class KernelRestore:
    """``kept_fraction(model, batch, done)``: work kept after a reset at ``done``."""

    def __init__(self, profile: ProfileBundle, default_kernels: int = DEFAULT_KERNELS) -> None:
        if default_kernels < 1:
            raise ValueError(f"default_kernels must be at least 1, got {default_kernels}")
        self.default_kernels = default_kernels
        self._ends: dict[tuple[str, int], list[float]] = {}
        kernels = profile.kernels
        if kernels is not None and len(kernels):
            for (model, batch), rows in kernels.groupby(["model", "batch"], sort=True):
                d = rows.sort_values("seq")["duration_us"].to_numpy(dtype=float)
                d = d[np.isfinite(d) & (d > 0)]
                if d.sum() > 0:
                    self._ends[(str(model), int(batch))] = (np.cumsum(d) / d.sum()).tolist()
        self._by_model: dict[str, list[int]] = {}
        for model, batch in self._ends:
            self._by_model.setdefault(model, []).append(batch)
        self._cache: dict[tuple[str, int], list[float]] = {}

    def kernel_ends(self, model: str, batch: int) -> list[float]:
        """Cumulative end of each kernel, as fractions of the batch's work (last = 1)."""
        key = (model, batch)
        got = self._cache.get(key)
        if got is None:
            batches = self._by_model.get(model)
            if batches:
                nearest = min(batches, key=lambda b: (abs(np.log2(b / batch)), b))
                got = self._ends[(model, nearest)]
            else:
                n = self.default_kernels
                got = [(i + 1) / n for i in range(n)]
            self._cache[key] = got
        return got

    def kept_fraction(self, model: str, batch: int, done: float) -> float:
        """Fraction of the work kept when a reset comes after ``done`` of it."""
        if done <= 0.0:
            return 0.0
        ends = self.kernel_ends(model, batch)
        i = bisect.bisect_right(ends, done + 1e-12)  # kernels wholly completed
        return ends[i - 1] if i > 0 else 0.0
