"""A hand-driven SystemView for policy tests: the test decides what runs and when.

The engine is the real driver; these fakes let a test build a state where the right
decision is known (a batch running with a known prediction, a queue of a given shape)
and look at the very actions the policy answers with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from strait_sim.policies.base import (
    CompletedBatch,
    Dispatch,
    Policy,
    PolicyContext,
    Preempt,
)
from strait_sim.requests import Request


@dataclass
class FakeBatch:
    batch_id: int
    gpu: int
    slot: int
    model: str
    size: int
    requests: tuple
    priority: int
    dispatch_s: float
    predicted_ms: float | None
    phase: str = "compute"
    compute_start_s: float | None = None


@dataclass
class FakeView:
    n_gpus: int = 1
    slots_per_gpu: int = 2
    max_batch: int = 8
    now: float = 0.0
    slots: dict = field(default_factory=dict)
    blocked: set = field(default_factory=set)  # slots the test keeps busy (not free)
    next_id: int = 0

    def __post_init__(self) -> None:
        for g in range(self.n_gpus):
            for s in range(self.slots_per_gpu):
                self.slots.setdefault((g, s), None)

    def free_slots(self) -> list[tuple[int, int]]:
        return [gs for gs, b in sorted(self.slots.items())
                if b is None and gs not in self.blocked]

    def running(self, gpu: int | None = None) -> list[FakeBatch]:
        return [b for (g, _), b in sorted(self.slots.items())
                if b is not None and b.phase != "reset" and (gpu is None or g == gpu)]

    def transfers_in_flight(self, gpu: int, direction: str) -> int:
        return 0

    # -- applying actions the way the engine does (minus timing) -----------------------------
    def dispatch(self, a: Dispatch) -> FakeBatch:
        assert self.slots[(a.gpu, a.slot)] is None, "dispatch to a busy slot"
        size = min(sum(r.items for r in a.requests), self.max_batch)
        b = FakeBatch(self.next_id, a.gpu, a.slot, a.requests[0].model, size, a.requests,
                      min(r.priority for r in a.requests), self.now, a.predicted_ms,
                      compute_start_s=self.now)
        self.next_id += 1
        self.slots[(a.gpu, a.slot)] = b
        return b

    def complete(self, policy: Policy, gpu: int, slot: int, at: float | None = None):
        b = self.slots[(gpu, slot)]
        if at is not None:
            self.now = at
        self.slots[(gpu, slot)] = None
        done = CompletedBatch(b.batch_id, gpu, slot, b.model, b.size, b.requests,
                              b.dispatch_s, b.dispatch_s, self.now, self.now, b.predicted_ms)
        return policy.on_completion(done, self)

    def preempt(self, policy: Policy, a: Preempt):
        b = self.slots[(a.gpu, a.slot)]
        b.phase = "preempted"
        self.slots[(a.gpu, a.slot)] = FakeBatch(-1, a.gpu, a.slot, b.model, b.size,
                                                b.requests, b.priority, self.now, None,
                                                phase="reset")
        return b, policy.on_preempted(b, self)

    def reset_done(self, policy: Policy, gpu: int, slot: int):
        self.slots[(gpu, slot)] = None
        return policy.on_timer(self)


def bind(policy: Policy, profile, view: FakeView) -> Policy:  # noqa: ANN001
    policy.bind(PolicyContext(profile=profile, models=profile.model_names,
                              n_gpus=view.n_gpus, slots_per_gpu=view.slots_per_gpu,
                              max_batch=view.max_batch, seed=0))
    return policy


class Ids:
    """Request ids for hand-built scenarios."""

    def __init__(self) -> None:
        self.n = 0

    def req(self, model: str, priority: int, arrival: float, deadline: float,
            items: int = 1) -> Request:
        self.n += 1
        return Request(self.n, model, priority, arrival, deadline, items)


def dispatches(actions) -> list[Dispatch]:  # noqa: ANN001
    return [a for a in actions if isinstance(a, Dispatch)]
