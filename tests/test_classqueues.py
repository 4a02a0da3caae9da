"""ClassQueues' answers from the models with work agree with scans of every model's heap.

Why: ``first``, ``models_in_order`` and ``models_with_work`` look only at the models whose
heap is not empty (issue 15); every policy built on ClassQueues (strait, reef, clockwork,
orion, gpulet, triton) depends on them giving exactly what a walk of all heaps gives.
"""

from __future__ import annotations

import random

import pytest

from strait_sim.policies.classqueues import ClassQueues
from strait_sim.requests import HIGH, LOW, Request

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

MODELS = ("m0", "m1", "m2", "m3", "m4", "m5", "m6")


def _scan_first(q: ClassQueues, cls: int):  # noqa: ANN202
    best = None
    for model, heap in q.heaps[cls].items():
        if heap and (best is None or heap[0] < best[0]):
            best = (heap[0], model)
    return None if best is None else (best[1], best[0][3])


def _scan_in_order(q: ClassQueues, cls: int) -> list[str]:
    return [m for _, m in sorted((h[0], m) for m, h in q.heaps[cls].items() if h)]


def _scan_with_work(q: ClassQueues, cls: int) -> list[str]:
    return [m for m, h in q.heaps[cls].items() if h]


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 200),
       order=st.sampled_from(["deadline", "arrival"]), by_class=st.booleans(),
       n_models=st.integers(1, len(MODELS)))
def test_answers_agree_with_scans_of_every_heap(seed, steps, order, by_class, n_models):
    rng = random.Random(seed)
    models = MODELS[:n_models]
    q = ClassQueues(models, order=order, by_class=by_class)
    next_id = 0
    for _ in range(steps):
        op = rng.random()
        cls = rng.choice((HIGH, LOW)) if by_class else HIGH
        if op < 0.5 or not len(q):
            t = rng.choice([0.0, 0.5, 1.0, rng.random()])  # ties in the keys, on purpose
            req = Request(next_id, rng.choice(models), rng.choice((HIGH, LOW)), t,
                          t + rng.choice([0.1, 0.2, rng.random()]), rng.randint(1, 3))
            next_id += 1
            q.push(req, front=rng.random() < 0.1)
        elif op < 0.75:
            with_work = _scan_with_work(q, cls)
            if with_work:
                q.pop(cls, rng.choice(with_work))
        else:
            q.take(cls, rng.choice(models), rng.randint(1, 6))
        for c in ((HIGH, LOW) if by_class else (HIGH,)):
            assert q.first(c) == _scan_first(q, c)
            assert q.models_in_order(c) == _scan_in_order(q, c)
            assert q.models_with_work(c) == _scan_with_work(q, c)
        assert len(q) == sum(len(h) for heaps in q.heaps for h in heaps.values())


def test_popping_while_walking_the_models_with_work():
    q = ClassQueues(MODELS, order="deadline")
    for i, m in enumerate(("m5", "m1", "m3")):
        q.push(Request(i, m, LOW, 0.0, 1.0 + i, 1))
    walked = []
    for m in q.models_with_work(LOW):  # in the models' order, not the pushes'
        walked.append(m)
        q.pop(LOW, m)
    assert walked == ["m1", "m3", "m5"]
    assert q.first(LOW) is None and q.models_in_order(LOW) == [] and not len(q)
