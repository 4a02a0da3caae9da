"""Arrival processes and request attributes: statistics, determinism, laziness, --load.

Statistical checks use fixed seeds and samples large enough that the tolerances are
several standard deviations wide (the numbers in comments are the approximate standard
errors), so they do not flake and still fail if a parameter is mishandled.
"""

from __future__ import annotations

import itertools
import math
import tracemalloc

import numpy as np
import pytest

from strait_sim.cli.workload_options import workload_from_options
from strait_sim.errors import UserError
from strait_sim.requests import HIGH, LOW, Request
from strait_sim.workloads.arrivals import (
    BLOCK,
    DiurnalArrivals,
    GammaArrivals,
    MMPPArrivals,
    PoissonArrivals,
)
from strait_sim.workloads.load import offered_load
from strait_sim.workloads.spec import workload_from_description


def _times(process, duration, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate(list(process.times(rng, duration)))


def _cv(times):
    gaps = np.diff(times)
    return gaps.std() / gaps.mean()


def _stream(wl, profile, seed=0):
    chunks = list(wl.chunks(profile, seed))
    cat = {name: np.concatenate([getattr(c, name) for c in chunks])
           for name in ("arrival_s", "model", "priority", "deadline_s", "items")}
    return chunks, cat


# -- arrival processes ---------------------------------------------------------------------


def test_poisson_rate_and_cv():
    t = _times(PoissonArrivals(1000.0), 500.0)  # 500k arrivals
    assert abs(len(t) / 500.0 - 1000.0) / 1000.0 < 0.01  # s.e. 0.14%
    assert abs(_cv(t) - 1.0) < 0.01  # s.e. ~0.2%
    assert np.all(np.diff(t) >= 0) and t[0] >= 0 and t[-1] < 500.0


@pytest.mark.parametrize("cv", [0.0, 0.5, 3.0])
def test_gamma_rate_and_cv(cv):
    t = _times(GammaArrivals(1000.0, cv), 400.0)
    assert abs(len(t) / 400.0 - 1000.0) / 1000.0 < 0.02  # s.e. <= 0.5% at cv 3
    assert abs(_cv(t) - cv) < max(0.03 * cv, 1e-9)  # s.e. ~0.5% of cv at cv 3


def test_mmpp_rate_cv_and_bursts():
    p = MMPPArrivals(1000.0, burst_ratio=10.0, burst_fraction=0.1, burst_s=0.01)
    assert math.isclose(p.burst_rate / p.quiet_rate, 10.0)
    assert math.isclose(0.1 * p.burst_rate + 0.9 * p.quiet_rate, 1000.0)
    t = _times(p, 500.0)
    assert abs(len(t) / 500.0 - 1000.0) / 1000.0 < 0.04  # s.e. ~0.9% (index of dispersion)
    want = p.theoretical_cv()
    assert want > 1.3  # bursty, so the check below is not a Poisson check in disguise
    assert abs(_cv(t) - want) / want < 0.03


def test_mmpp_splits_long_hot_bursts_into_bounded_blocks():
    p = MMPPArrivals(200_000.0, burst_ratio=5.0, burst_fraction=0.5, burst_s=5.0)
    blocks = list(itertools.islice(p.times(np.random.default_rng(1), 20.0), 6))
    assert all(len(b) <= BLOCK for b in blocks)
    cat = np.concatenate(blocks)
    assert np.all(np.diff(cat) >= 0)


def test_diurnal_rate_follows_the_sinusoid():
    p = DiurnalArrivals(500.0, amplitude=0.8, period_s=100.0, phase=0.3)
    t = _times(p, 1000.0)  # ten periods, ~500k arrivals
    assert abs(len(t) / 1000.0 - 500.0) / 500.0 < 0.01
    # Fold onto one period and compare 10 phase bins with the integral of the rate.
    counts = np.bincount(((t % 100.0) // 10.0).astype(int), minlength=10)
    edges = np.arange(11) * 10.0
    w = 2 * math.pi / 100.0
    expected = 10 * 500.0 * (10.0 - 0.8 / w * (np.cos(w * edges[1:] + 0.3)
                                               - np.cos(w * edges[:-1] + 0.3)))
    assert np.max(np.abs(counts - expected) / expected) < 0.03  # s.e. <= 1% per bin
    assert counts.max() / counts.min() > 4  # really modulated


def test_diurnal_expected_count_over_partial_period():
    p = DiurnalArrivals(100.0, amplitude=1.0, period_s=40.0, phase=0.0)
    # First 10 s are the rising quarter: rate above the mean the whole time.
    assert p.expected_count(10.0) > 100.0 * 10.0
    t = _times(p, 10.0, seed=3)
    n = np.mean([len(_times(p, 10.0, seed=s)) for s in range(20)])
    assert abs(n - p.expected_count(10.0)) / p.expected_count(10.0) < 0.03
    assert len(t) > 0


@pytest.mark.parametrize("bad", [
    lambda: PoissonArrivals(0.0), lambda: PoissonArrivals(float("nan")),
    lambda: GammaArrivals(1.0, -1.0), lambda: MMPPArrivals(1.0, burst_ratio=0.5),
    lambda: MMPPArrivals(1.0, burst_fraction=1.0), lambda: DiurnalArrivals(1.0, amplitude=2),
])
def test_process_parameters_are_validated(bad):
    with pytest.raises(ValueError):
        bad()


# -- generated workloads -------------------------------------------------------------------


def test_same_seed_same_workload_other_seed_other(synthetic_bundle):
    wl = workload_from_options({"workload": "mmpp", "rate": 500.0, "duration": 30.0,
                                "items": "1-4", "hp_fraction": 0.3}, synthetic_bundle)
    _, a = _stream(wl, synthetic_bundle, seed=7)
    _, b = _stream(wl, synthetic_bundle, seed=7)
    _, c = _stream(wl, synthetic_bundle, seed=8)
    for k in a:
        assert np.array_equal(a[k], b[k])
    assert len(a["arrival_s"]) != len(c["arrival_s"]) or \
        not np.array_equal(a["arrival_s"], c["arrival_s"])


def test_attributes_do_not_move_arrivals(synthetic_bundle):
    base = {"workload": "poisson", "rate": 300.0, "duration": 20.0}
    one = workload_from_options({**base, "hp_fraction": 0.1}, synthetic_bundle)
    two = workload_from_options({**base, "hp_fraction": 0.9, "slo": "2"}, synthetic_bundle)
    assert np.array_equal(_stream(one, synthetic_bundle)[1]["arrival_s"],
                          _stream(two, synthetic_bundle)[1]["arrival_s"])


def test_chunk_contract(synthetic_bundle):
    wl = workload_from_options({"workload": "poisson", "rate": 20000.0, "duration": 10.0,
                                "items": "1=1,4=1"}, synthetic_bundle)
    chunks, cat = _stream(wl, synthetic_bundle)
    assert len(chunks) > 2 and all(0 < len(c) <= BLOCK for c in chunks)
    for c in chunks:
        assert c.models == wl.models
        assert c.model.dtype == np.int16 and c.priority.dtype == np.int8
        assert c.items.dtype == np.int32 and c.arrival_s.dtype == np.float64
    assert np.all(np.diff(cat["arrival_s"]) >= 0)
    assert np.all(cat["deadline_s"] > cat["arrival_s"])
    assert set(np.unique(cat["items"])) == {1, 4}
    assert set(np.unique(cat["priority"])) == {HIGH, LOW}


def test_mix_hp_share_and_items_follow_parameters(synthetic_bundle):
    wl = workload_from_options({"workload": "poisson", "rate": 10000.0, "duration": 20.0,
                                "mix": "synth_small=3,synth_medium=1,synth_large=0",
                                "hp_fraction": 0.25, "items": "1=1,2=1,8=2"},
                               synthetic_bundle)
    _, s = _stream(wl, synthetic_bundle)
    n = len(s["model"])  # ~200k: shares have s.e. ~0.1%
    share = np.bincount(s["model"], minlength=3) / n
    assert np.allclose(share, [0.75, 0.25, 0.0], atol=0.01)
    assert abs(np.mean(s["priority"] == HIGH) - 0.25) < 0.01
    assert abs(np.mean(s["items"] == 8) - 0.5) < 0.01


def test_hp_models_sets_priority_per_model(synthetic_bundle):
    wl = workload_from_options({"workload": "poisson", "rate": 5000.0, "duration": 20.0,
                                "hp_models": "synth_small,synth_large=0.5"}, synthetic_bundle)
    _, s = _stream(wl, synthetic_bundle)
    names = wl.models
    small = s["model"] == names.index("synth_small")
    medium = s["model"] == names.index("synth_medium")
    large = s["model"] == names.index("synth_large")
    assert np.all(s["priority"][small] == HIGH)
    assert np.all(s["priority"][medium] == LOW)
    assert abs(np.mean(s["priority"][large] == HIGH) - 0.5) < 0.02


def test_deadlines_follow_slo_and_absolute_rules(synthetic_bundle):
    p = synthetic_bundle
    wl = workload_from_options({"workload": "poisson", "rate": 2000.0, "duration": 5.0,
                                "slo": "high=3,low=10", "items": "1-3"}, p)
    _, s = _stream(wl, p)
    solo = np.array([p.solo_ms(wl.models[m], i) / 1e3 for m, i in zip(s["model"], s["items"],
                                                                      strict=True)])
    slo = np.where(s["priority"] == HIGH, 3.0, 10.0)
    assert np.array_equal(s["deadline_s"], s["arrival_s"] + slo * solo)
    wl2 = workload_from_options({"workload": "poisson", "rate": 2000.0, "duration": 5.0,
                                 "slo": "7", "deadline_ms": "high=20"}, p)
    _, s2 = _stream(wl2, p)
    hp = s2["priority"] == HIGH
    assert np.allclose(s2["deadline_s"][hp] - s2["arrival_s"][hp], 0.020)
    solo2 = np.array([p.solo_ms(wl2.models[m], 1) / 1e3 for m in s2["model"][~hp]])
    assert np.allclose(s2["deadline_s"][~hp] - s2["arrival_s"][~hp], 7 * solo2)


def test_max_requests_stops_the_stream(synthetic_bundle):
    wl = workload_from_options({"workload": "gamma", "rate": 1e5, "duration": 100.0,
                                "max_requests": 100_001}, synthetic_bundle)
    _, s = _stream(wl, synthetic_bundle)
    assert len(s["arrival_s"]) == 100_001 == wl.expected_count()


def test_generation_is_lazy(synthetic_bundle):
    # 10,000,000 requests on paper; taking the first chunks must not generate the rest.
    wl = workload_from_options({"workload": "poisson", "rate": 1e6, "duration": 10.0},
                               synthetic_bundle)
    assert wl.expected_count() == 10_000_000
    first = list(itertools.islice(wl.chunks(synthetic_bundle, 0), 3))
    assert sum(len(c) for c in first) == 3 * BLOCK
    # Streaming 2,000,000 requests keeps peak memory far below holding them all (~46 MB).
    wl2 = workload_from_options({"workload": "mmpp", "rate": 1e5, "duration": 20.0,
                                 "items": "1-4"}, synthetic_bundle)
    tracemalloc.start()
    n = sum(len(c) for c in wl2.chunks(synthetic_bundle, 0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n > 1_500_000
    assert peak < 16e6, peak


# -- --load -------------------------------------------------------------------------------


@pytest.mark.parametrize("opts,gpus", [
    ({"workload": "poisson", "load": 0.8, "duration": 200.0}, 1),
    ({"workload": "gamma", "cv": 1.5, "load": 0.6, "duration": 200.0, "items": "1-8",
      "mix": "synth_small=1,synth_medium=2,synth_large=1"}, 4),
    ({"workload": "diurnal", "load": 0.5, "duration": 130.0, "diurnal_period": 100.0}, 2),
    ({"workload": "poisson", "load": 0.9, "duration": 200.0, "items": "2-6",
      "capacity_batch": "max"}, 1),
])
def test_load_gives_the_offered_utilisation(synthetic_bundle, opts, gpus):
    wl = workload_from_options(opts, synthetic_bundle, gpus=gpus, max_batch=8)
    cap = 8 if opts.get("capacity_batch") else None
    got = offered_load(synthetic_bundle, wl.chunks(synthetic_bundle, 1), gpus,
                       opts["duration"], cap)
    assert abs(got - opts["load"]) / opts["load"] < 0.03, got  # s.e. < 1%
    assert wl.describe()["load"]["target"] == opts["load"]


def test_default_is_load_0_8(synthetic_bundle):
    wl = workload_from_options({}, synthetic_bundle)
    assert wl.kind == "poisson" and wl.describe()["load"]["target"] == 0.8


def test_capacity_batch_counts_less_work_per_item(synthetic_bundle):
    a = workload_from_options({"load": 0.8}, synthetic_bundle)
    b = workload_from_options({"load": 0.8, "capacity_batch": "8"}, synthetic_bundle)
    assert b.process.rate > a.process.rate  # batching makes each item cheaper


# -- closed loop ---------------------------------------------------------------------------


def _drive(wl, profile, service_s, seed=0):
    """A minimal driver: each request ends ``service_s(req)`` after its arrival."""
    import heapq

    session = wl.session(profile, seed)
    rid = 0
    events = []
    per_client_models: dict[int, list[str]] = {}
    arrivals = []

    def take(chunk):
        nonlocal rid
        if chunk is None:
            return
        for i in range(len(chunk)):
            req = Request(rid, chunk.models[chunk.model[i]], int(chunk.priority[i]),
                          float(chunk.arrival_s[i]), float(chunk.deadline_s[i]),
                          int(chunk.items[i]))
            rid += 1
            arrivals.append(req.arrival_s)
            heapq.heappush(events, (req.arrival_s + service_s(req), req.id, req))

    take(session.first_requests())
    order = {r: c for r, c in session._client_of.items()}
    while events:
        end, _, req = heapq.heappop(events)
        per_client_models.setdefault(order[req.id], []).append(req.model)
        before = rid
        take(session.next_after(req, end))
        if rid > before:
            order[before] = session._client_of[before]
    return np.array(arrivals), per_client_models


def test_closed_loop_rate_and_pairing(synthetic_bundle):
    wl = workload_from_options({"workload": "closed", "clients": 20, "think_ms": 50.0,
                                "duration": 100.0}, synthetic_bundle)
    assert wl.closed_loop
    with pytest.raises(TypeError):
        next(wl.chunks(synthetic_bundle, 0))
    arr, fast = _drive(wl, synthetic_bundle, lambda r: 0.0)
    # Zero service: each client sends every 50 ms on average -> 400 req/s.
    assert abs(len(arr) / 100.0 - 400.0) / 400.0 < 0.03  # s.e. ~0.5%
    _, slow = _drive(wl, synthetic_bundle, lambda r: 0.05)
    # Each client's sequence of models is the same whatever the service times.
    for c in slow:
        assert slow[c] == fast[c][:len(slow[c])]
    assert sum(map(len, slow.values())) < sum(map(len, fast.values()))


def test_closed_loop_max_requests_and_duration(synthetic_bundle):
    wl = workload_from_options({"workload": "closed", "clients": 5, "think_ms": 10.0,
                                "think_dist": "const", "duration": 1.0, "max_requests": 37},
                               synthetic_bundle)
    arr, _ = _drive(wl, synthetic_bundle, lambda r: 0.001)
    assert len(arr) == 37 and arr.max() < 1.0


# -- description round trip ----------------------------------------------------------------


@pytest.mark.parametrize("opts", [
    {"workload": "poisson", "rate": 100.0, "duration": 5.0},
    {"workload": "gamma", "cv": 0.3, "load": 0.4, "duration": 5.0, "mix": "2,1,1"},
    {"workload": "mmpp", "rate": 100.0, "burst_ratio": 4.0, "deadline_ms": "high=5,low=50"},
    {"workload": "diurnal", "rate": 50.0, "diurnal_amplitude": 0.2, "items": "1=1,3=2"},
    {"workload": "closed", "clients": 3, "think_ms": 7.0, "hp_models": "synth_small"},
])
def test_description_rebuilds_an_identical_workload(synthetic_bundle, opts):
    wl = workload_from_options(opts, synthetic_bundle)
    desc = wl.describe()
    import json

    desc = json.loads(json.dumps(desc))  # it must survive JSON (the run summary)
    again = workload_from_description(desc)
    assert again.describe() == desc and again.kind == desc["kind"]
    if not wl.closed_loop:
        a, b = _stream(wl, synthetic_bundle, 4)[1], _stream(again, synthetic_bundle, 4)[1]
        for k in a:
            assert np.array_equal(a[k], b[k])


def test_bad_descriptions_are_user_errors():
    with pytest.raises(UserError, match="unknown kind"):
        workload_from_description({"kind": "nope"})
    with pytest.raises(UserError, match="missing key"):
        workload_from_description({"kind": "poisson"})


def test_mmpp_does_not_generate_past_the_end():
    # A 9000 s quiet period at 50k req/s must not be generated when the run lasts 10 s.
    p = MMPPArrivals(1e5, burst_ratio=10.0, burst_fraction=0.1, burst_s=1000.0)
    t = _times(p, 10.0)
    assert 0 < len(t) < 6e6 and t.max() < 10.0
    assert math.isclose(len(t) / 10.0, p.quiet_rate, rel_tol=0.02) or \
        math.isclose(len(t) / 10.0, p.burst_rate, rel_tol=0.02)
