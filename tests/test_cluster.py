"""Clusters: nodes behind a router, one policy per node, one set of records."""

from __future__ import annotations

import numpy as np
import pytest

from strait_sim.engine.simulator import SimConfig, simulate
from strait_sim.errors import UnknownNameError
from strait_sim.policies.fifo import FifoPolicy
from strait_sim.policies.registry import make_policy
from strait_sim.policies.routing import ROUTERS, make_router
from strait_sim.workloads.spec import build_workload


def _run(bundle, policy, *, nodes, gpus, router="least-loaded", load=0.9, seed=2,
         duration=3.0, slots=2):
    wl = build_workload({"load": load, "duration": duration, "hp_fraction": 0.3}, bundle,
                        gpus=nodes * gpus, max_batch=4)
    cfg = SimConfig(gpus=gpus, nodes=nodes, router=router, slots=slots, max_batch=4,
                    seed=seed)
    out = simulate(bundle, wl, policy if not isinstance(policy, str) else make_policy(policy),
                   cfg)
    return out, out.records.to_frame(out.models)


@pytest.mark.parametrize("router", sorted(ROUTERS))
@pytest.mark.parametrize("policy", ["fifo", "strait", "reef"])
def test_every_request_ends_once_and_same_seed_same_results(synthetic_bundle, router, policy):
    out, df = _run(synthetic_bundle, policy, nodes=3, gpus=2, router=router)
    assert len(df) > 1000 and (df["status"].astype(str) != "pending").all()
    served = df["status"].astype(str).isin(["on_time", "late"])
    assert set(df.loc[served, "gpu"].unique()) <= set(range(6))
    assert len(set(df.loc[served, "gpu"].unique())) == 6  # every node's GPUs served
    assert sum(out.extra["requests_per_node"]) == len(df)
    assert len(out.busy_s) == 6
    _, again = _run(synthetic_bundle, policy, nodes=3, gpus=2, router=router)
    assert df.equals(again)


def test_round_robin_splits_evenly_and_least_loaded_beats_it(synthetic_bundle):
    rr, df_rr = _run(synthetic_bundle, "fifo", nodes=4, gpus=1, router="round-robin",
                     load=0.95, slots=1, duration=10.0)
    counts = rr.extra["requests_per_node"]
    assert max(counts) - min(counts) <= 1
    jsq, df_jsq = _run(synthetic_bundle, "fifo", nodes=4, gpus=1, router="least-loaded",
                       load=0.95, slots=1, duration=10.0)
    lat_rr = (df_rr["finish_s"] - df_rr["arrival_s"]).mean()
    lat_jsq = (df_jsq["finish_s"] - df_jsq["arrival_s"]).mean()
    assert lat_jsq < lat_rr  # joining the shortest queue beats blind rotation


class _LocalOnly(FifoPolicy):
    """Asserts that a node's policy sees only its own GPUs, numbered from 0."""

    name = "local-only"

    def bind(self, ctx) -> None:
        assert ctx.n_gpus == 2
        super().bind(ctx)

    def on_arrival(self, request, view):
        assert view.n_gpus == 2
        assert all(g < 2 for g, _ in view.free_slots())
        assert all(b.gpu < 2 for b in view.running())
        return super().on_arrival(request, view)


def test_a_node_policy_sees_only_its_gpus(synthetic_bundle):
    out, df = _run(synthetic_bundle, _LocalOnly(), nodes=3, gpus=2)
    assert sorted(df["gpu"].unique()) == list(range(6))


def test_bad_router_is_a_one_line_error():
    with pytest.raises(UnknownNameError, match="unknown router 'nope'"):
        make_router("nope")


def test_two_choices_is_deterministic_and_spreads(synthetic_bundle):
    out, df = _run(synthetic_bundle, "fifo", nodes=8, gpus=1, router="two-choices")
    counts = np.array(out.extra["requests_per_node"])
    assert counts.min() > 0.5 * counts.mean()


def test_node_loads_return_to_zero_when_every_request_ended(synthetic_bundle):
    from strait_sim.engine.simulator import make_sim_driver

    wl = build_workload({"load": 1.2, "duration": 2.0, "hp_fraction": 0.3}, synthetic_bundle,
                        gpus=4, max_batch=4)
    driver = make_sim_driver(synthetic_bundle, wl, make_policy("clockwork"),
                             SimConfig(gpus=1, nodes=4, slots=2, max_batch=4, seed=3))
    out = driver.run()
    assert driver.loads == [0, 0, 0, 0]
    assert sum(out.extra["requests_per_node"]) == out.records.count
