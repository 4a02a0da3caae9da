"""Open-loop generated workloads: an arrival process plus request attributes.

The seed is split into two independent streams (numpy ``SeedSequence.spawn``): one for
arrival times, one for attributes. Changing the HP share or the deadlines therefore leaves
the arrival times untouched, which keeps comparisons between settings paired.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from strait_sim.profile_bundle import ProfileBundle
from strait_sim.requests import RequestChunk
from strait_sim.workloads.arrivals import ArrivalProcess
from strait_sim.workloads.attributes import RequestAttributes, SoloTable
from strait_sim.workloads.base import Workload


def check_duration(duration_s: float) -> None:
    if not (isinstance(duration_s, int | float) and math.isfinite(duration_s)
            and duration_s > 0):
        raise ValueError(f"duration must be a finite number of seconds > 0, got {duration_s}")


def check_max_requests(max_requests: int | None) -> None:
    if max_requests is not None and (int(max_requests) != max_requests or max_requests < 1):
        raise ValueError(f"max requests must be a whole number >= 1, got {max_requests}")


def check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")


class GeneratedWorkload(Workload):
    """Poisson, Gamma, MMPP or diurnal arrivals for ``duration_s`` seconds (or until
    ``max_requests``), each request's attributes drawn by ``attrs``.

    ``load`` is a record of how the rate was chosen (``--load``), kept for the run summary;
    the rate itself is in ``process``.
    """

    closed_loop = False

    def __init__(self, process: ArrivalProcess, attrs: RequestAttributes, duration_s: float,
                 max_requests: int | None = None, load: dict | None = None) -> None:
        check_duration(duration_s)
        check_max_requests(max_requests)
        self.kind = process.kind  # type: ignore[misc]
        self.process = process
        self.attrs = attrs
        self.models = attrs.models
        self.duration_s = float(duration_s)
        self.max_requests = None if max_requests is None else int(max_requests)
        self.load = load

    def chunks(self, profile: ProfileBundle, seed: int) -> Iterator[RequestChunk]:
        check_seed(seed)
        for m in self.models:
            profile.require_model(m)
        arrival_seq, attr_seq = np.random.SeedSequence(int(seed)).spawn(2)
        arrival_rng = np.random.default_rng(arrival_seq)
        attr_rng = np.random.default_rng(attr_seq)
        solo = SoloTable(profile, self.models)
        left = self.max_requests
        for times in self.process.times(arrival_rng, self.duration_s):
            if left is not None:
                times = times[:left]
                left -= len(times)
            if len(times):
                yield self.attrs.make_chunk(attr_rng, solo, times)
            if left == 0:
                return

    def describe(self) -> dict:
        return {"kind": self.kind, "duration_s": self.duration_s,
                "max_requests": self.max_requests, "arrivals": self.process.describe(),
                "requests": self.attrs.describe(), "load": self.load}

    def expected_count(self) -> int | None:
        n = int(round(self.process.expected_count(self.duration_s)))
        return min(n, self.max_requests) if self.max_requests is not None else n
