"""Invariants of the engine (DESIGN.md section 5), each enforced here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strait_sim.engine.simulator import SimConfig, simulate
from strait_sim.experiment import run_simulation
from strait_sim.policies.registry import make_policy, policy_names
from strait_sim.profile_bundle import read_bundle_dir
from strait_sim.results import load_results
from strait_sim.synthetic import SyntheticSpec, make_synthetic_bundle
from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

CORE_POLICIES = tuple(sorted(policy_names()))  # every registered policy


def _run(bundle, policy: str, *, rate=900.0, duration=10.0, seed=3, slots=2, gpus=1,
         max_batch=8):
    wl = BasicPoissonWorkload(bundle.model_names, rate=rate, duration_s=duration,
                              hp_fraction=0.3, slo=4.0)
    cfg = SimConfig(gpus=gpus, slots=slots, max_batch=max_batch, seed=seed)
    return run_simulation(bundle, wl, make_policy(policy), cfg)


@pytest.mark.parametrize("policy", CORE_POLICIES)
def test_every_request_ends_exactly_once_per_class(synthetic_bundle, policy):
    res = _run(synthetic_bundle, policy, gpus=2)
    df = res.requests
    assert df["id"].is_unique
    assert (df["status"].astype(str) != "pending").all()
    for cls in ("high", "low"):
        c = res.summary["by_class"][cls]
        assert c["count"] == (df["priority"].astype(str) == cls).sum() > 0
        assert c["on_time"] + c["late"] + c["dropped"] + c["rejected"] + c["failed"] == c["count"]
    assert res.summary["requests"] == len(df) == res.summary["overall"]["count"]


@pytest.mark.parametrize("policy", CORE_POLICIES)
def test_causality(synthetic_bundle, policy):
    df = _run(synthetic_bundle, policy).requests
    served = df["status"].astype(str).isin(["on_time", "late"])
    s = df[served]
    assert (s["start_s"] >= s["arrival_s"] - 1e-9).all(), "started before it arrived"
    assert (s["finish_s"] > s["start_s"]).all(), "finished before it started"
    assert ((s["finish_s"] <= s["deadline_s"]) == (s["status"].astype(str) == "on_time")).all()
    assert (s["batch_size"] >= 1).all() and (s["batch_size"] <= 8).all()


@pytest.mark.parametrize("policy", CORE_POLICIES)
def test_same_seed_identical_parquet(synthetic_bundle, tmp_path, policy):
    a = _run(synthetic_bundle, policy, seed=11, duration=3.0)
    b = _run(synthetic_bundle, policy, seed=11, duration=3.0)
    a.write(tmp_path / "a")
    b.write(tmp_path / "b")
    assert (tmp_path / "a/requests.parquet").read_bytes() == \
        (tmp_path / "b/requests.parquet").read_bytes()
    c = _run(synthetic_bundle, policy, seed=12, duration=3.0)
    assert not a.requests["finish_s"].equals(c.requests["finish_s"])


@pytest.mark.parametrize("policy", ["fifo", "strait"])
def test_closed_loop_same_seed_identical_and_conserved(synthetic_bundle, tmp_path, policy):
    from strait_sim.workloads.spec import build_workload

    def run(seed):
        wl = build_workload({"workload": "closed", "clients": 8, "think_ms": 1.0,
                             "duration": 2.0}, synthetic_bundle, max_batch=4)
        return run_simulation(synthetic_bundle, wl, make_policy(policy),
                              SimConfig(slots=2, max_batch=4, seed=seed))

    a, b = run(4), run(4)
    a.write(tmp_path / "a")
    b.write(tmp_path / "b")
    assert (tmp_path / "a/requests.parquet").read_bytes() == \
        (tmp_path / "b/requests.parquet").read_bytes()
    df = a.requests
    assert len(df) > 100 and (df["status"].astype(str) != "pending").all()
    served = df["status"].astype(str).isin(["on_time", "late"])
    assert (df.loc[served, "start_s"] >= df.loc[served, "arrival_s"] - 1e-12).all()


def test_results_round_trip(synthetic_bundle, tmp_path):
    res = _run(synthetic_bundle, "fifo", duration=2.0)
    res.write(tmp_path / "run")
    back = load_results(tmp_path / "run")
    pd.testing.assert_frame_equal(back.requests, res.requests)
    assert back.summary["policy"] == "fifo"
    for key in ("requests", "by_class", "overall", "gpu_busy_fraction", "policy", "seed",
                "profile", "workload"):
        assert key in back.summary
    for key in ("count", "completed", "on_time", "late", "dropped", "rejected",
                "violation_rate", "p50_ms", "p95_ms", "p99_ms"):
        assert key in back.summary["by_class"]["high"]


def test_priority_serves_high_class_faster_under_load(synthetic_bundle):
    res = _run(synthetic_bundle, "priority", rate=1400, duration=10)
    hp, lp = res.summary["by_class"]["high"], res.summary["by_class"]["low"]
    assert hp["p95_ms"] < lp["p95_ms"]
    assert hp["violation_rate"] <= lp["violation_rate"]


@pytest.fixture(scope="module")
def constant_bundle(tmp_path_factory):
    """One model with an exactly constant service time of 1 ms (noise_cv = 0)."""
    spec = SyntheticSpec(models={"const": (1.0, 0.0)}, io_bytes={"const": (1000, 1000)},
                         batches=(1, 2), reps=4, noise_cv=0.0)
    path = make_synthetic_bundle(tmp_path_factory.mktemp("b") / "synthetic-const", spec)
    return read_bundle_dir(path)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_md1_mean_latency_matches_pollaczek_khinchine(constant_bundle, rho):
    service_s = 1e-3
    rate = rho / service_s
    wl = BasicPoissonWorkload(("const",), rate=rate, duration_s=300_000 / rate,
                              hp_fraction=0.0, slo=1000.0)
    cfg = SimConfig(gpus=1, slots=1, max_batch=1, seed=5, interference=False, pcie=False)
    out = simulate(constant_bundle, wl, make_policy("fifo"), cfg)
    df = out.records.to_frame(out.models)
    latency = (df["finish_s"] - df["arrival_s"]).to_numpy()
    expected = service_s + rho * service_s / (2 * (1 - rho))  # M/D/1 (P-K)
    assert abs(latency.mean() / expected - 1) < 0.03
    assert np.allclose((df["finish_s"] - df["start_s"]).to_numpy(), service_s)


def test_more_gpus_lower_latency(synthetic_bundle):
    one = _run(synthetic_bundle, "fifo", rate=1400, gpus=1).summary["overall"]["p95_ms"]
    two = _run(synthetic_bundle, "fifo", rate=1400, gpus=2).summary["overall"]["p95_ms"]
    assert two < one
