"""A minimal Poisson workload used by the engine's own tests and benchmark.

Open-loop Poisson arrivals at ``rate`` per second for ``duration`` seconds, models drawn by
weight, a fraction of high-priority requests, deadline = arrival + ``slo`` x the model's
median solo latency at batch 1 from the profile. Generated lazily in chunks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from strait_sim.profile_bundle import ProfileBundle
from strait_sim.requests import HIGH, LOW, RequestChunk
from strait_sim.workloads.base import Workload


class BasicPoissonWorkload(Workload):
    kind = "poisson-basic"

    def __init__(self, models: tuple[str, ...], rate: float, duration_s: float,
                 hp_fraction: float = 0.2, slo: float = 5.0,
                 weights: tuple[float, ...] | None = None, chunk: int = 65536,
                 max_requests: int | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if duration_s <= 0:
            raise ValueError(f"duration must be > 0, got {duration_s}")
        if not 0 <= hp_fraction <= 1:
            raise ValueError(f"hp_fraction must be in [0, 1], got {hp_fraction}")
        if slo <= 0:
            raise ValueError(f"slo must be > 0, got {slo}")
        self.models = tuple(models)
        self.rate = float(rate)
        self.duration_s = float(duration_s)
        self.hp_fraction = float(hp_fraction)
        self.slo = float(slo)
        w = np.ones(len(self.models)) if weights is None else np.asarray(weights, float)
        self.weights = w / w.sum()
        self.chunk = chunk
        self.max_requests = max_requests

    def chunks(self, profile: ProfileBundle, seed: int) -> Iterator[RequestChunk]:
        rng = np.random.default_rng(seed)
        solo_s = np.array([profile.solo_ms(m, 1) / 1e3 for m in self.models])
        t = 0.0
        produced = 0
        while True:
            n = self.chunk
            arrivals = t + np.cumsum(rng.exponential(1.0 / self.rate, n))
            keep = arrivals < self.duration_s
            if self.max_requests is not None:
                keep[max(0, self.max_requests - produced):] = False
            arrivals = arrivals[keep]
            m = len(arrivals)
            model = rng.choice(len(self.models), size=n, p=self.weights).astype(np.int16)[:m]
            prio = np.where(rng.random(n) < self.hp_fraction, HIGH, LOW).astype(np.int8)[:m]
            if m:
                yield RequestChunk(self.models, arrivals, model, prio,
                                   arrivals + self.slo * solo_s[model],
                                   np.ones(m, dtype=np.int32))
                produced += m
            if m < n:
                return
            t = float(arrivals[-1])

    def describe(self) -> dict:
        return {"kind": self.kind, "models": list(self.models), "rate": self.rate,
                "duration_s": self.duration_s, "hp_fraction": self.hp_fraction,
                "slo": self.slo, "weights": self.weights.tolist(),
                "max_requests": self.max_requests}

    def expected_count(self) -> int | None:
        n = int(self.rate * self.duration_s)
        return min(n, self.max_requests) if self.max_requests else n
