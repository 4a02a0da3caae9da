"""The driver rules, shared by the engine and the live executor, reject policy bugs."""

from __future__ import annotations

import pytest

from strait_sim.engine.records import RequestRecords
from strait_sim.engine.rules import (
    PolicyError,
    check_all_ended,
    check_dispatch,
    record_dispatch,
    record_unserved,
)
from strait_sim.policies.base import Dispatch
from strait_sim.policies.fifo import FifoPolicy
from strait_sim.requests import DROPPED, LOW, REJECTED, Request


def _req(rid: int, model: str = "m", items: int = 1) -> Request:
    return Request(rid, model, LOW, 0.0, 1.0, items)


def _check(a: Dispatch, busy: bool = False):
    return check_dispatch(FifoPolicy(), a, gpus=1, slots=2, slot_busy=busy, max_batch=4)


def test_valid_dispatch_gives_model_and_size():
    assert _check(Dispatch(0, 1, (_req(0), _req(1, items=2)))) == ("m", 3)
    assert _check(Dispatch(0, 0, (_req(0, items=9),))) == ("m", 4)  # one big request: capped


@pytest.mark.parametrize("a, busy, needle", [
    (Dispatch(0, 2, (_req(0),)), False, "does not exist"),
    (Dispatch(1, 0, (_req(0),)), False, "does not exist"),
    (Dispatch(0, 0, (_req(0),)), True, "busy slot"),
    (Dispatch(0, 0, ()), False, "empty batch"),
    (Dispatch(0, 0, (_req(0), _req(1, "other"))), False, "mixed models"),
    (Dispatch(0, 0, (_req(0, items=3), _req(1, items=2))), False, "above --max-batch 4"),
])
def test_invalid_dispatch(a, busy, needle):
    with pytest.raises(PolicyError, match=needle):
        _check(a, busy)


def test_a_request_ends_once():
    rec = RequestRecords()
    rec.ensure(3)
    pol = FifoPolicy()
    record_dispatch(rec, pol, (_req(0),), now=1.0, gpu=0, slot=1, size=1, predicted_ms=2.0)
    assert rec.get("start_s", 0) == 1.0 and rec.get("predicted_ms", 0) == 2.0
    record_unserved(rec, pol, (_req(1),), status=DROPPED, now=2.0)
    with pytest.raises(PolicyError, match="ended request 1 twice"):
        record_unserved(rec, pol, (_req(1),), status=REJECTED, now=3.0)
    with pytest.raises(PolicyError, match="dispatched request 1, which has already ended"):
        record_dispatch(rec, pol, (_req(1),), now=3.0, gpu=0, slot=0, size=1,
                        predicted_ms=None)


def test_end_of_run_check():
    rec = RequestRecords()
    rec.ensure(2)
    pol = FifoPolicy()
    pol.waiting = lambda: 0
    check_all_ended(pol, rec, ended=2)
    with pytest.raises(PolicyError, match="1 request\\(s\\) never ended"):
        check_all_ended(pol, rec, ended=1)
    pol.waiting = lambda: 3
    with pytest.raises(PolicyError, match="still holds 3"):
        check_all_ended(pol, rec, ended=2)


def test_request_queues_head_and_remove_if_stay_consistent():
    from strait_sim.policies.queues import RequestQueues
    from strait_sim.requests import HIGH

    q = RequestQueues(("a", "b"), order="deadline", by_class=True)
    reqs = [Request(i, "ab"[i % 2], HIGH if i % 3 == 0 else LOW, 0.0, 10.0 - i) for i in range(9)]
    for r in reqs:
        q.push(r)
    assert q.head().id == 8 and q.head(HIGH).id == 6 and q.head(LOW).id == 8
    removed = q.remove_if(lambda r: r.id in (6, 8))
    assert sorted(r.id for r in removed) == [6, 8] and len(q) == 7
    assert q.head().id == 7 and q.head(HIGH).id == 3 and q.head(LOW).id == 7
    assert [r.id for r in q.pop_batch("b", 2, LOW)] == [7, 5]
