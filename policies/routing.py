"""The dispatch tier of a cluster: routers that send each request to a node.

A cluster run (``--nodes N --gpus G``) has two tiers of policy:

1. one **router** (this module) sees every arrival and picks the node that will serve
   it, from what a front-end load balancer could know: how many requests each node holds
   (routed there, not ended) and how many of its slots are free;
2. on each node, an ordinary :class:`~strait_sim.policies.base.Policy` (one instance per
   node, a copy of the one asked for) schedules the node's own G GPUs, seeing only them,
   numbered 0..G-1, exactly as on a single node.

A router is a plain object: ``bind(ctx)`` once, then ``route(request, view) -> node``.
Routing is final (no migration between nodes), as in serving front-ends that balance at
admission. Routers are deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from strait_sim.errors import UnknownNameError
from strait_sim.requests import Request


@dataclass(frozen=True)
class RouterContext:
    nodes: int
    gpus_per_node: int
    slots_per_gpu: int
    models: tuple[str, ...]
    seed: int = 0


class ClusterView(Protocol):
    loads: list[int]  # per node: requests routed there that have not ended (read only)

    def load(self, node: int) -> int:
        """Requests routed to ``node`` that have not ended."""

    def free_slots(self, node: int) -> int:
        """Idle slots on ``node`` now."""


class Router:
    """Base class: subclasses implement :meth:`route`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def bind(self, ctx: RouterContext) -> None:
        self.ctx = ctx

    def route(self, request: Request, view: ClusterView) -> int:
        raise NotImplementedError


class RoundRobin(Router):
    name = "round-robin"
    summary = "nodes in turn, blind to load"

    def bind(self, ctx: RouterContext) -> None:
        super().bind(ctx)
        self._next = 0

    def route(self, request: Request, view: ClusterView) -> int:
        node = self._next
        self._next = (node + 1) % self.ctx.nodes
        return node


class LeastLoaded(Router):
    """Join the shortest queue: the node holding the fewest unfinished requests; ties go to
    the next node after the last choice (so equal nodes take turns)."""

    name = "least-loaded"
    summary = "the node holding the fewest unfinished requests (ties: in turn)"

    def bind(self, ctx: RouterContext) -> None:
        super().bind(ctx)
        self._last = -1

    def route(self, request: Request, view: ClusterView) -> int:
        loads = view.loads
        least = min(loads)  # C-level scans: a few microseconds at 1,000 nodes
        start = self._last + 1
        try:
            best = loads.index(least, start)
        except ValueError:
            best = loads.index(least)
        self._last = best
        return best


class TwoChoices(Router):
    """The power of two choices (Mitzenmacher): two nodes drawn at random, the less
    loaded wins. O(1) per request, close to least-loaded at any cluster size."""

    name = "two-choices"
    summary = "the less loaded of two random nodes (O(1) per request)"

    def bind(self, ctx: RouterContext) -> None:
        super().bind(ctx)
        self._rng = np.random.default_rng([ctx.seed, 0x726F_7574])  # "rout" stream
        self._draws: list[int] = []

    def route(self, request: Request, view: ClusterView) -> int:
        if self.ctx.nodes == 1:
            return 0
        if len(self._draws) < 2:
            self._draws = self._rng.integers(0, self.ctx.nodes, 8192).tolist()
        a, b = self._draws.pop(), self._draws.pop()
        loads = view.loads
        return a if loads[a] <= loads[b] else b


ROUTERS: dict[str, type[Router]] = {r.name: r for r in (LeastLoaded, RoundRobin, TwoChoices)}


def make_router(name: str) -> Router:
    try:
        return ROUTERS[name]()
    except KeyError:
        raise UnknownNameError("router", name, sorted(ROUTERS)) from None
