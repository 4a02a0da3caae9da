"""A fake device backend for the drift probe's tests: forwards take a known factor of the
profile's solo median, so no test depends on this machine's speed."""

from __future__ import annotations

import numpy as np

from strait_sim.profiler.backend import BackendError


class _Timing:
    def __init__(self, ms: float) -> None:
        self.compute_ms = ms


class _Job:
    def __init__(self, ms: float) -> None:
        self._ms = ms

    def result(self, timeout: float) -> _Timing:
        return _Timing(self._ms)


class SlowedBackend:
    """Forwards of ``model`` (every model if None) take ``factor`` x the profile's solo
    median, the others 1x, with ``noise`` relative noise; ``fail`` raises on submit."""

    def __init__(self, bundle, factor: float, seed: int = 0, fail: bool = False,
                 model: str | None = None, noise: float = 0.03) -> None:
        self.bundle, self.factor, self.fail = bundle, factor, fail
        self.model, self.noise = model, noise
        self.rng = np.random.default_rng(seed)
        self.streams_used: set[int] = set()
        self.closed = False

    def prepare(self, model: str, batch: int) -> None:
        pass

    def submit(self, model: str, batch: int, stream: int) -> _Job:
        if self.fail:
            raise BackendError("injected: the device fell over")
        self.streams_used.add(stream)
        factor = self.factor if self.model in (None, model) else 1.0
        return _Job(self.bundle.solo_ms(model, batch) * factor
                    * float(self.rng.normal(1.0, self.noise)))

    def close(self) -> None:
        self.closed = True
