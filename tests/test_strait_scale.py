"""Strait's indexes for scale (issue 15) give the answers of the scans they replace.

Each fast structure is checked against the plain computation it stands for, on random
sequences of operations: the GPUs filed by occupancy against ``len(by_gpu[g])``, the
least-occupied-first order against a stable sort.
"""

from __future__ import annotations

import random

import pytest

from strait_sim.policies.base import PolicyContext
from strait_sim.policies.estimates import Believed
from strait_sim.policies.occupancy import OccupancyEstimator
from strait_sim.policies.occupancy_rows import least_occupied_first

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None)


@pytest.fixture(scope="module")
def profile():
    from strait_sim.profile_bundle import read_bundle_dir
    from strait_sim.profile_registry import resolve_profile

    return read_bundle_dir(resolve_profile("synthetic-tiny")[0], name="synthetic-tiny")


def _estimator(profile, gpus: int, slots: int) -> OccupancyEstimator:
    ctx = PolicyContext(profile=profile, models=profile.model_names, n_gpus=gpus,
                        slots_per_gpu=slots, max_batch=4)
    return OccupancyEstimator(ctx, None)


def _belief(model: str) -> Believed:
    return Believed(model, 1, 1, 0.0, 0.001, 0.002, 1.0, 1.0, 1.0)


def _filed(est: OccupancyEstimator) -> list[list[int]]:
    """The occupancy rows computed from scratch: the GPUs of each occupancy, ascending."""
    assert est.occupancy is not None
    return [[g for g, row in enumerate(est.by_gpu) if len(row) == k]
            for k in range(len(est.occupancy.rows))]


@SETTINGS
@given(gpus=st.integers(2, 7), slots=st.integers(1, 3), seed=st.integers(0, 2**32 - 1),
       steps=st.integers(1, 120))
def test_gpus_filed_by_occupancy_follow_commits_and_releases(profile, gpus, slots, seed,
                                                             steps):
    rng = random.Random(seed)
    est = _estimator(profile, gpus, slots)
    model = profile.model_names[0]
    for i in range(steps):
        gpu = rng.randrange(gpus)
        row = est.by_gpu[gpu]
        if row and rng.random() < 0.5:
            est.release(i * 1e-3, gpu, rng.choice(row))
        else:  # may exceed the slots: the index grows a row rather than break
            est.commit(i * 1e-3, gpu, _belief(model))
        assert est.occupancy.rows == _filed(est)  # type: ignore[union-attr]


@SETTINGS
@given(gpus=st.integers(2, 9), slots=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_least_occupied_first_is_the_stable_sort_even_while_dispatching(profile, gpus,
                                                                         slots, seed):
    rng = random.Random(seed)
    est = _estimator(profile, gpus, slots)
    model = profile.model_names[0]
    for gpu in range(gpus):  # a random occupancy per GPU
        for _ in range(rng.randint(0, slots)):
            est.commit(0.0, gpu, _belief(model))
    # free slots: usually the ones beliefs leave, sometimes any subset (a live driver's
    # view may disagree with the beliefs); ordered by gpu then slot, as the view's are
    free = sorted((g, s) for g in range(gpus) for s in range(slots)
                  if (s >= len(est.by_gpu[g]) if rng.random() < 0.8 else rng.random() < 0.5))
    expected = sorted(free, key=lambda gs: len(est.by_gpu[gs[0]]))
    got = []
    for gpu, slot in least_occupied_first(free, est.occupancy.rows):  # type: ignore[union-attr]
        got.append((gpu, slot))
        if rng.random() < 0.5:  # a dispatch there moves the GPU up a row meanwhile
            est.commit(0.001, gpu, _belief(model))
    assert got == expected


def test_least_occupied_first_stops_after_the_last_free_slot():
    # a full GPU (row 2) has no free slot: once every free slot is out, the rows after
    # are not walked (the generator ends without reading them)
    class Row(list):
        def __len__(self):
            raise AssertionError("walked a row past the last free slot")

        def __getitem__(self, i):  # noqa: ANN001, ANN204
            raise AssertionError("walked a row past the last free slot")

    rows = [[1], [0], Row([2, 3])]
    free = [(0, 1), (1, 0), (1, 1)]
    assert list(least_occupied_first(free, rows)) == [(1, 0), (1, 1), (0, 1)]


def _replacement_by_calls(est: OccupancyEstimator, model: str, size: int) -> float:
    """replacement_excess as its docstring defines it, through excess() and rate()."""
    num = den = 0.0
    for (m, b), n in est._mix_counts.items():  # type: ignore[union-attr]
        tau = n * est.solo[m][b] * (1.0 + est.excess(m, b, model, size))
        num += tau * est.rate(model, size, m, b)
        den += tau
    k = num / den if den > 0.0 else 0.0
    return k / (1.0 - k)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 300))
def test_replacement_excess_from_the_mirror_equals_the_calls(profile, seed, steps):
    """The int-keyed mirror of the pairs table follows every learn() step: the mirrored
    loop gives exactly (==) what excess() and rate() give, whatever was learned."""
    from strait_sim.policies.base import CompletedBatch, CoRun
    from strait_sim.predictors.registry import make_predictor

    rng = random.Random(seed)
    ctx = PolicyContext(profile=profile, models=profile.model_names, n_gpus=1,
                        slots_per_gpu=2, max_batch=4)
    est = OccupancyEstimator(ctx, make_predictor("pairs", profile), mirror=True)
    assert est._pair_index is not None  # (few models: off unless asked for)
    assert OccupancyEstimator(ctx, make_predictor("pairs", profile))._pair_index is None
    models = profile.model_names
    for _ in range(steps):
        op = rng.random()
        model, size = rng.choice(models), rng.randint(1, 4)
        if op < 0.3:
            est.commit(0.0, 0, Believed(model, size, 1, 9.0, 9.0, 9.0, 1.0), slot=0)
            est.by_gpu[0].clear()
        elif op < 0.8:
            runs = tuple(CoRun(rng.choice(models), rng.randint(1, 4),
                               rng.choice([0.0, rng.uniform(0.1, 5.0)]))
                         for _ in range(rng.randint(1, 3)))
            est.observe(CompletedBatch(0, 0, 0, model, size, (), 0.0, 0.0,
                                       rng.uniform(0.001, 0.02), 0.02, None, runs))
        else:
            est._replacement.clear()
            got = est.replacement_excess(model, size)
            assert got == _replacement_by_calls(est, model, size)
    table, index, n = est._rates, est._pair_index, est._pair_n
    assert table is not None and index is not None
    keys = {index[(m, b)] * n + index[(cm, cb)]: (m, b, cm, cb)
            for m in models for cm in models for b in range(5) for cb in range(5)}
    for key, value in est._by_index.items():
        assert value == table[keys[key]]


class _RescanEveryCheck:
    """Strait as before the per-pick cache: the look-ahead scans every running batch at
    each guard check."""

    def _lp_safe(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        self._first_end = None
        self.checks = getattr(self, "checks", 0) + 1
        return super()._lp_safe(*args, **kwargs)


@pytest.mark.parametrize("gpus", [1, 3])
def test_guard_reads_the_earliest_end_once_per_pick_with_the_same_decisions(profile, gpus):
    """The look-ahead's earliest believed end, found once per LP pick, gives the run that
    a scan at every guard check gives, to the byte."""
    from strait_sim.engine.simulator import SimConfig
    from strait_sim.experiment import run_simulation
    from strait_sim.policies.strait import StraitPolicy
    from strait_sim.workloads.spec import build_workload

    class Rescan(_RescanEveryCheck, StraitPolicy):
        pass

    frames = []
    for policy in (StraitPolicy(), Rescan()):
        workload = build_workload({"load": 1.1 * gpus, "duration": 4.0}, profile,
                                  max_batch=4)
        res = run_simulation(profile, workload, policy,
                             SimConfig(gpus=gpus, slots=2, max_batch=4, seed=3))
        frames.append(res.requests)
    assert policy.checks > 100 and policy.held_back > 0  # the guard was exercised
    assert frames[0].equals(frames[1])
