"""Closed loop: N clients, each sending a request, waiting for its end, thinking, again.

Arrivals depend on the system's response times, so the stream cannot be generated ahead:
the driver (engine or live executor) opens a :class:`ClosedLoopSessionImpl` and reports
each request's end. Each client has its own random stream (numpy ``SeedSequence.spawn``),
so client c's k-th request asks for the same model, class and items, and thinks for the
same time, whatever the policy under test does: comparisons between policies stay paired.

First arrivals are staggered so that the clients do not start in lock-step: with
exponential think times a client's first request comes one think time after 0; with a
constant think time, at a uniform point in [0, think).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from strait_sim.profile_bundle import ProfileBundle
from strait_sim.requests import Request, RequestChunk
from strait_sim.workloads.attributes import RequestAttributes, SoloTable
from strait_sim.workloads.base import ClosedLoopSession, Workload
from strait_sim.workloads.generated import check_duration, check_max_requests, check_seed

THINK_DISTS = ("exp", "const")
_REFILL = 64  # draws per client per refill


class ClosedLoopWorkload(Workload):
    """``clients`` clients with mean think time ``think_s`` (exponential or constant)."""

    kind = "closed"
    closed_loop = True

    def __init__(self, clients: int, think_s: float, attrs: RequestAttributes,
                 duration_s: float, think_dist: str = "exp",
                 max_requests: int | None = None) -> None:
        if isinstance(clients, bool) or int(clients) != clients or clients < 1:
            raise ValueError(f"clients must be a whole number >= 1, got {clients}")
        if not (math.isfinite(think_s) and think_s >= 0):
            raise ValueError(f"think time must be >= 0, got {think_s}")
        if think_dist not in THINK_DISTS:
            raise ValueError(f"think distribution must be one of {', '.join(THINK_DISTS)}, "
                             f"got {think_dist!r}")
        check_duration(duration_s)
        check_max_requests(max_requests)
        self.clients = int(clients)
        self.think_s = float(think_s)
        self.think_dist = think_dist
        self.attrs = attrs
        self.models = attrs.models
        self.duration_s = float(duration_s)
        self.max_requests = None if max_requests is None else int(max_requests)

    def chunks(self, profile: ProfileBundle, seed: int) -> Iterator[RequestChunk]:
        raise TypeError("a closed-loop workload depends on response times: use session()")

    def session(self, profile: ProfileBundle, seed: int) -> ClosedLoopSessionImpl:
        check_seed(seed)
        for m in self.models:
            profile.require_model(m)
        return ClosedLoopSessionImpl(self, profile, int(seed))

    def describe(self) -> dict:
        return {"kind": self.kind, "duration_s": self.duration_s,
                "max_requests": self.max_requests, "clients": self.clients,
                "think_s": self.think_s, "think_dist": self.think_dist,
                "requests": self.attrs.describe()}


class _Client:
    """One client's random stream, drawn ahead in small blocks."""

    __slots__ = ("rng", "model", "priority", "items", "think", "pos")

    def __init__(self, seq: np.random.SeedSequence) -> None:
        self.rng = np.random.default_rng(seq)
        self.pos = _REFILL

    def refill(self, wl: ClosedLoopWorkload) -> None:
        self.model = wl.attrs.draw_models(self.rng, _REFILL).tolist()
        self.priority = wl.attrs.draw_priority(self.rng, np.asarray(self.model)).tolist()
        self.items = wl.attrs.items.draw(self.rng, _REFILL).tolist()
        self.think = _think(self.rng, wl, _REFILL).tolist()
        self.pos = 0


def _think(rng: np.random.Generator, wl: ClosedLoopWorkload, n: int) -> np.ndarray:
    if wl.think_dist == "exp":
        return rng.exponential(wl.think_s, n)
    return np.full(n, wl.think_s)


class ClosedLoopSessionImpl(ClosedLoopSession):
    """The feedback half: one outstanding request per client."""

    def __init__(self, wl: ClosedLoopWorkload, profile: ProfileBundle, seed: int) -> None:
        self.wl = wl
        self.solo = SoloTable(profile, wl.models)
        seqs = np.random.SeedSequence(seed).spawn(wl.clients)
        self.clients = [_Client(s) for s in seqs]
        self.issued = 0
        self._next_id = 0
        self._client_of: dict[int, int] = {}
        self._started = False

    def _budget_left(self) -> bool:
        return self.wl.max_requests is None or self.issued < self.wl.max_requests

    def _draw(self, c: int) -> tuple[int, int, int, float]:
        client = self.clients[c]
        if client.pos >= _REFILL:
            client.refill(self.wl)
        i = client.pos
        client.pos += 1
        return client.model[i], client.priority[i], client.items[i], client.think[i]

    def _chunk(self, clients: list[int], arrivals: list[float],
               draws: list[tuple[int, int, int, float]]) -> RequestChunk:
        n = len(clients)
        for c in clients:
            self._client_of[self._next_id] = c
            self._next_id += 1
        self.issued += n
        model = np.array([d[0] for d in draws], dtype=np.int16)
        prio = np.array([d[1] for d in draws], dtype=np.int8)
        items = np.array([d[2] for d in draws], dtype=np.int32)
        deadline = np.array([self.wl.attrs.deadline_one(self.solo, a, d[0], d[1], d[2])
                             for a, d in zip(arrivals, draws, strict=True)])
        return RequestChunk(self.wl.models, np.asarray(arrivals, dtype=np.float64), model,
                            prio, deadline, items)

    def first_requests(self) -> RequestChunk:
        if self._started:
            raise RuntimeError("first_requests() may be called once per session")
        self._started = True
        firsts = []
        for c, client in enumerate(self.clients):
            if self.wl.think_dist == "exp":
                t0 = float(client.rng.exponential(self.wl.think_s))
            else:
                t0 = float(client.rng.random() * self.wl.think_s)
            firsts.append((t0, c))
        firsts.sort()  # stable on ties: lower client first
        firsts = [f for f in firsts if f[0] < self.wl.duration_s]
        if self.wl.max_requests is not None:
            firsts = firsts[:self.wl.max_requests]
        clients = [c for _, c in firsts]
        draws = [self._draw(c) for c in clients]
        return self._chunk(clients, [t for t, _ in firsts], draws)

    def next_after(self, request: Request, end_s: float) -> RequestChunk | None:
        try:
            c = self._client_of.pop(request.id)
        except KeyError:
            raise ValueError(f"request {request.id} is not outstanding in this session") \
                from None
        if not self._budget_left():
            return None
        model, prio, items, think = self._draw(c)
        arrival = float(end_s) + think
        if arrival >= self.wl.duration_s:
            return None
        return self._chunk([c], [arrival], [(model, prio, items, think)])
