"""The driver holds every policy to the same rules, at once, naming what was broken."""

from __future__ import annotations

import pytest

from strait_sim.driver.rules import check_dispatch
from strait_sim.driver.states import ENDED, IN_FLIGHT, WAITING, PolicyError, RequestStates
from strait_sim.engine.simulator import SimConfig, simulate
from strait_sim.errors import UserError
from strait_sim.policies.base import Dispatch, Drop
from strait_sim.policies.fifo import FifoPolicy
from strait_sim.requests import LOW, Request
from strait_sim.workloads.spec import build_workload


def _req(rid: int, model: str = "m", items: int = 1) -> Request:
    return Request(rid, model, LOW, 0.0, 1.0, items)


def _check(a: Dispatch, busy: bool = False):
    return check_dispatch("fifo", a, gpus=1, slots=2, slot_busy=busy, max_batch=4)


def test_valid_dispatch_gives_model_and_size():
    assert _check(Dispatch(0, 1, (_req(0), _req(1, items=2)))) == ("m", 3)


@pytest.mark.parametrize("a, busy, needle", [
    (Dispatch(0, 2, (_req(0),)), False, "no such slot"),
    (Dispatch(1, 0, (_req(0),)), False, "no such slot"),
    (Dispatch(0, 0, (_req(0),)), True, "the slot is busy"),
    (Dispatch(0, 0, ()), False, "empty batch"),
    (Dispatch(0, 0, (_req(0), _req(1, "other"))), False, "one model per batch"),
    (Dispatch(0, 0, (_req(0, items=3), _req(1, items=2))), False, "at most --max-batch 4"),
    (Dispatch(0, 0, (_req(0, items=9),)), False, "at most --max-batch 4"),
])
def test_invalid_dispatch(a, busy, needle):
    with pytest.raises(PolicyError, match=needle):
        _check(a, busy)


def test_state_machine_moves_and_refusals():
    s = RequestStates()
    s.ensure(3)
    for rid in range(3):
        s.set(rid, WAITING)
    s.move("p", "Dispatch", (_req(0),), IN_FLIGHT)
    with pytest.raises(PolicyError, match=r"Dispatch of request 0 refused: it is in flight"):
        s.move("p", "Dispatch", (_req(0),), IN_FLIGHT)
    with pytest.raises(PolicyError, match=r"Drop of request 0 refused: it is in flight"):
        s.move("p", "Drop", (_req(0),), ENDED)
    s.move("p", "Reject", (_req(1),), ENDED)
    with pytest.raises(PolicyError, match=r"Reject of request 1 refused: it is ended"):
        s.move("p", "Reject", (_req(1),), ENDED)
    with pytest.raises(PolicyError, match=r"request -1 refused: no such request"):
        s.move("p", "Drop", (_req(-1),), ENDED)
    assert s.first_not_ended(3) == (0, IN_FLIGHT)


def _run_policy(bundle, policy, **opts):
    wl = build_workload({"load": 0.8, "duration": 1.0, **opts}, bundle, max_batch=4)
    return simulate(bundle, wl, policy, SimConfig(slots=2, max_batch=4, seed=1))


class _DoubleDispatch(FifoPolicy):
    """Dispatches each request, then again on the other slot."""

    name = "double"

    def on_arrival(self, request, view):
        free = view.free_slots()
        if len(free) < 2:
            return [Drop((request,))]
        return [Dispatch(*free[0], (request,)), Dispatch(*free[1], (request,))]


class _DropInFlight(FifoPolicy):
    name = "drop-in-flight"

    def on_arrival(self, request, view):
        free = view.free_slots()
        if not free:
            return [Drop((request,))]
        return [Dispatch(*free[0], (request,)), Drop((request,))]


class _ReadsTheFuture(FifoPolicy):
    """Looks at the sampled work left of a running batch (truth state)."""

    name = "clairvoyant"

    def on_arrival(self, request, view):
        for b in view.running():
            _ = b.remaining_s
        return super().on_arrival(request, view)


class _WritesTheView(FifoPolicy):
    name = "writer"

    def on_arrival(self, request, view):
        for b in view.running():
            b.phase = "d2h"
        return super().on_arrival(request, view)


class _Hoarder(FifoPolicy):
    """Never dispatches and never drops."""

    name = "hoarder"

    def on_arrival(self, request, view):
        return ()

    def waiting(self) -> int:
        return 0


@pytest.mark.parametrize("policy, needle", [
    (_DoubleDispatch(), r"policy double: Dispatch of request 0 refused: it is in flight"),
    (_DropInFlight(), r"policy drop-in-flight: Drop of request 0 refused: it is in flight"),
    (_Hoarder(), r"policy hoarder: request 0 never ended: it is waiting"),
])
def test_a_rule_breaking_policy_fails_at_once_naming_it(synthetic_bundle, policy, needle):
    with pytest.raises(PolicyError, match=needle):
        _run_policy(synthetic_bundle, policy)


def test_a_policy_cannot_read_or_write_past_the_view(synthetic_bundle):
    with pytest.raises(AttributeError, match="remaining_s"):
        _run_policy(synthetic_bundle, _ReadsTheFuture(), load=1.5)
    with pytest.raises(AttributeError):
        _run_policy(synthetic_bundle, _WritesTheView(), load=1.5)


def test_requests_larger_than_max_batch_are_refused_in_one_line(synthetic_bundle):
    """The workload builder refuses them up front; the driver's rule still stops a
    workload built for a larger max batch (a trace), at its first such request."""
    with pytest.raises(UserError, match=r"--items: 8 items is above --max-batch 4"):
        _run_policy(synthetic_bundle, FifoPolicy(), items=8)
    wl = build_workload({"load": 0.8, "duration": 1.0, "items": 8}, synthetic_bundle,
                        max_batch=8)
    with pytest.raises(UserError, match=r"request 0 has 8 items, above --max-batch 4"):
        simulate(synthetic_bundle, wl, FifoPolicy(), SimConfig(slots=2, max_batch=4, seed=1))
