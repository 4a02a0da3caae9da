"""One driver, two clocks: the live driver over a backend that follows the truth model
gives the simulation's per-request records, for every registered policy.

The live side is the whole live path (wall clock with its inbox, backend device, phase
reports, co-runs from measured intervals, preemption through the backend); only time is
the truth's own (``TruthTime``), so the comparison is exact up to float rounding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strait_sim.devices.truth_backend import TruthBackend, TruthTime
from strait_sim.engine.simulator import SimConfig, simulate
from strait_sim.live.drive import drive_live
from strait_sim.policies.registry import make_policy, policy_names
from strait_sim.workloads.spec import build_workload

TIMES = ("arrival_s", "deadline_s", "start_s", "finish_s", "predicted_ms", "compute_ms")
EXACT = ("model", "priority", "gpu", "slot", "status", "batch_size", "items", "preemptions")


# A live device cannot resume a batch reset at kernel granularity (it restarts it), so
# the exact comparison runs reef with whole-batch restart, the mode both clocks share.
SAME_ON_BOTH = {"reef": {"restore": "restart"}}


def _both(bundle, policy: str, opts: dict, config: SimConfig):
    params = SAME_ON_BOTH.get(policy, {})
    wl = build_workload(opts, bundle, max_batch=config.max_batch)
    sim = simulate(bundle, wl, make_policy(policy, **params), config)
    backend = TruthBackend(bundle, tuple(wl.models), config)
    wl = build_workload(opts, bundle, max_batch=config.max_batch)
    live = drive_live(bundle, wl, make_policy(policy, **params), config, backend,
                      handle_sigint=False, time_source=TruthTime(backend), measure=False)
    return sim, live


def _assert_same_records(sim, live) -> pd.DataFrame:
    a = sim.records.to_frame(sim.models)
    b = live.records.to_frame(live.models)
    assert len(a) == len(b) > 0
    for col in EXACT:
        assert (a[col].astype(str).to_numpy() == b[col].astype(str).to_numpy()).all(), col
    for col in TIMES:
        np.testing.assert_allclose(b[col].to_numpy(float), a[col].to_numpy(float),
                                   rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=col)
    assert sim.batches == live.batches
    assert sim.preemptions == live.preemptions
    return a


@pytest.mark.parametrize("policy", sorted(policy_names()))
def test_live_driver_over_truth_backend_equals_simulation(synthetic_bundle, policy):
    config = SimConfig(slots=2, max_batch=4, seed=7)
    sim, live = _both(synthetic_bundle, policy, {"load": 1.1, "duration": 3.0,
                                                 "hp_fraction": 0.3}, config)
    _assert_same_records(sim, live)


def test_conformance_covers_preemption_and_timers(synthetic_bundle):
    """reef preempts and triton sets timers: the comparison above really exercised them."""
    config = SimConfig(slots=2, max_batch=4, seed=7)
    opts = {"load": 1.1, "duration": 3.0, "hp_fraction": 0.3}
    sim, live = _both(synthetic_bundle, "reef", opts, config)
    assert sim.preemptions > 0
    _assert_same_records(sim, live)


@pytest.mark.parametrize("policy", ["fifo", "strait", "triton"])
def test_closed_loop_live_equals_simulation(synthetic_bundle, policy):
    config = SimConfig(slots=2, max_batch=4, seed=5)
    opts = {"workload": "closed", "clients": 6, "think_ms": 2.0, "duration": 2.0}
    sim, live = _both(synthetic_bundle, policy, opts, config)
    _assert_same_records(sim, live)
