"""The baselines on hand-built scenarios where the right decision is known."""

from __future__ import annotations

import pytest
from test_policies_fakes import FakeView, Ids, bind, dispatches

from strait_sim.errors import UserError
from strait_sim.policies.base import Drop, Preempt, Reject, WakeAt
from strait_sim.policies.clockwork import ClockworkPolicy
from strait_sim.policies.gpulet import GpuletPolicy
from strait_sim.policies.orion import OrionPolicy
from strait_sim.policies.reef import ReefPolicy
from strait_sim.policies.triton import TritonPolicy
from strait_sim.requests import HIGH, LOW

# -- reef ------------------------------------------------------------------------------------


def test_reef_preempts_lp_for_hp_and_restarts_it_first(synthetic_bundle):
    view = FakeView(slots_per_gpu=1)
    pol = bind(ReefPolicy(preempt_cost_ms=0.2), synthetic_bundle, view)
    ids = Ids()
    lp = ids.req("synth_large", LOW, 0.0, 1.0)
    lp2 = ids.req("synth_large", LOW, 0.0, 1.0)
    (d,) = dispatches(pol.on_arrival(lp, view))
    view.dispatch(d)
    assert pol.on_arrival(lp2, view) == ()  # queued behind: no slot, LP never preempts
    view.now = 0.001
    hp = ids.req("synth_small", HIGH, 0.001, 0.003)
    acts = pol.on_arrival(hp, view)
    assert acts == [Preempt(0, 0, 0.2, "kernel")]  # REEF resets the kernels in flight
    victim, after = view.preempt(pol, acts[0])
    assert dispatches(after) == []  # the slot is resetting
    assert pol.waiting() == 3
    # a second HP arrival while the reset runs does not kill anything more
    view.now = 0.0011
    assert pol.on_arrival(ids.req("synth_small", HIGH, 0.0011, 0.004), view) == []
    view.now = 0.0012
    (d,) = dispatches(view.reset_done(pol, 0, 0))
    assert [r.priority for r in d.requests] == [HIGH, HIGH]
    view.dispatch(d)
    (d,) = dispatches(view.complete(pol, 0, 0, at=0.002))
    # the preempted request restarts before the LP request that was queued before it
    assert d.requests[0] is lp and victim.requests == (lp,)


def test_reef_spares_batches_copying_out(synthetic_bundle):
    view = FakeView(slots_per_gpu=1)
    pol = bind(ReefPolicy(), synthetic_bundle, view)
    ids = Ids()
    (d,) = dispatches(pol.on_arrival(ids.req("synth_large", LOW, 0.0, 1.0), view))
    view.dispatch(d).phase = "d2h"
    assert pol.on_arrival(ids.req("synth_small", HIGH, 0.0, 0.01), view) == []
    pol2 = bind(ReefPolicy(preempt_d2h=True), synthetic_bundle, view)
    pol2.q.push(ids.req("synth_small", HIGH, 0.0, 0.01))
    assert pol2._preempt_for_hp(view) == [Preempt(0, 0, 0.1, "kernel")]


def test_reef_resumes_a_reset_batch_as_the_same_set(synthetic_bundle):
    """Kernel restore keeps a reset batch's requests together, so the simulator can resume
    it; the restart option puts them back in the queue, where they merge with others."""
    for restore, expect_same in (("kernel", True), ("restart", False)):
        view = FakeView(slots_per_gpu=1)
        pol = bind(ReefPolicy(restore=restore), synthetic_bundle, view)
        ids = Ids()
        a, b, c = (ids.req("synth_large", LOW, 0.0, 1.0) for _ in range(3))
        pol.q.push(a)
        pol.q.push(b)
        (d,) = dispatches(pol.on_timer(view))
        view.dispatch(d)
        assert d.requests == (a, b)
        assert pol.on_arrival(c, view) == ()
        view.now = 0.001
        (pre,) = pol.on_arrival(ids.req("synth_small", HIGH, 0.001, 0.01), view)
        assert pre.restore == restore
        view.preempt(pol, pre)
        assert pol.waiting() == 4
        (d,) = dispatches(view.reset_done(pol, 0, 0))
        assert d.requests[0].priority == HIGH
        view.dispatch(d)
        (d,) = dispatches(view.complete(pol, 0, 0, at=0.002))
        assert (d.requests == (a, b)) is expect_same
        assert d.requests[:2] == (a, b)  # either way they go first


def test_reef_padding_bounds_lp_interference_beside_hp(synthetic_bundle):
    # HP runs on slot 0; an LP batch that would slow it beyond the bound waits.
    def setup(**params):
        view = FakeView()
        pol = bind(ReefPolicy(**params), synthetic_bundle, view)
        ids = Ids()
        (d,) = dispatches(pol.on_arrival(ids.req("synth_large", HIGH, 0.0, 0.1), view))
        view.dispatch(d)
        return view, pol, ids

    view, pol, ids = setup(pad_slowdown=1.0000001)
    s = pol._hp_slowdown("synth_large", 1, "synth_large", 1)
    assert s > 1.0000001
    assert dispatches(pol.on_arrival(ids.req("synth_large", LOW, 0.0, 1.0), view)) == []
    assert pol.waiting() == 1
    view, pol, ids = setup(pad_slowdown=s + 0.01)
    assert len(dispatches(pol.on_arrival(ids.req("synth_large", LOW, 0.0, 1.0), view))) == 1
    view, pol, ids = setup(pad_slowdown=None)
    assert len(dispatches(pol.on_arrival(ids.req("synth_large", LOW, 0.0, 1.0), view))) == 1
    # An HP batch dispatched beside a running LP batch that slows it too much resets it.
    view = FakeView()
    pol = bind(ReefPolicy(pad_slowdown=1.0000001), synthetic_bundle, view)
    ids = Ids()
    (d,) = dispatches(pol.on_arrival(ids.req("synth_large", LOW, 0.0, 1.0), view))
    view.dispatch(d)
    acts = pol.on_arrival(ids.req("synth_large", HIGH, 0.0, 0.1), view)
    assert len(dispatches(acts)) == 1
    assert [a for a in acts if isinstance(a, Preempt)] == [Preempt(0, 0, 0.1, "kernel")]


def test_reef_kernel_restore_loses_only_the_kernels_in_flight(synthetic_bundle):
    """Same workload and seed: resetting only the kernel in flight loses a small part of
    what restarting whole batches loses (the bundle has no kernels.csv: 50 equal
    kernels, so about half a kernel, 1%, of a batch's work per reset)."""
    from strait_sim.engine.simulator import SimConfig
    from strait_sim.experiment import run_simulation
    from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

    lost = {}
    for restore in ("kernel", "restart"):
        wl = BasicPoissonWorkload(synthetic_bundle.model_names, rate=1500, duration_s=1.0)
        res = run_simulation(synthetic_bundle, wl,
                             ReefPolicy(preempt_cost_ms=0.05, restore=restore),
                             SimConfig(slots=1, seed=2))
        eng = res.summary["engine"]
        assert eng["preemptions"] > 0
        lost[restore] = eng["lost_work_s"] / eng["preemptions"]
    assert 0 < lost["kernel"] < 0.2 * lost["restart"]


def test_reef_accounts_lost_work_in_the_engine(synthetic_bundle):
    from strait_sim.engine.simulator import SimConfig
    from strait_sim.experiment import run_simulation
    from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

    wl = BasicPoissonWorkload(synthetic_bundle.model_names, rate=1500, duration_s=1.0)
    res = run_simulation(synthetic_bundle, wl, ReefPolicy(preempt_cost_ms=0.05),
                         SimConfig(slots=1, seed=2))
    eng = res.summary["engine"]
    assert eng["preemptions"] > 0 and eng["lost_work_s"] > 0
    df = res.requests
    assert df["preemptions"].sum() >= eng["preemptions"]
    hit = df[df["preemptions"] > 0]
    assert (hit["priority"].astype(str) == "low").all()  # only LP work is ever killed
    assert hit["status"].astype(str).isin(["on_time", "late"]).all()  # and it restarted


# -- clockwork -------------------------------------------------------------------------------


def test_clockwork_drops_infeasible_request(synthetic_bundle):
    view = FakeView()
    pol = bind(ClockworkPolicy(), synthetic_bundle, view)
    ids = Ids()
    doomed = ids.req("synth_large", HIGH, 0.0, 0.002)  # ~3.1 ms alone
    acts = pol.on_arrival(doomed, view)
    assert [a for a in acts if isinstance(a, Drop)][0].requests == (doomed,)
    assert dispatches(acts) == [] and pol.waiting() == 0


def test_clockwork_runs_one_batch_per_gpu(synthetic_bundle):
    view = FakeView(slots_per_gpu=2)
    pol = bind(ClockworkPolicy(), synthetic_bundle, view)
    ids = Ids()
    (d,) = dispatches(pol.on_arrival(ids.req("synth_small", LOW, 0.0, 1.0), view))
    view.dispatch(d)
    assert dispatches(pol.on_arrival(ids.req("synth_small", HIGH, 0.0, 1.0), view)) == []
    assert len(dispatches(view.complete(pol, 0, 0, at=0.001))) == 1


def test_clockwork_estimates_from_recent_measurements(synthetic_bundle):
    view = FakeView()
    pol = bind(ClockworkPolicy(window=3, quantile=1.0), synthetic_bundle, view)
    ids = Ids()
    for dur in (0.004, 0.005, 0.003, 0.002):
        (d,) = dispatches(pol.on_arrival(ids.req("synth_small", LOW, view.now, 1.0), view))
        view.dispatch(d)
        view.complete(pol, 0, 0, at=view.now + dur)
    # the window keeps the last three (5, 3, 2 ms); quantile 1 is their maximum
    assert pol.estimate_ms("synth_small", 1) == pytest.approx(5.0)


# -- triton ----------------------------------------------------------------------------------


def test_triton_waits_max_queue_delay_then_dispatches(synthetic_bundle):
    view = FakeView()
    pol = bind(TritonPolicy(max_queue_delay_ms=2.0), synthetic_bundle, view)
    ids = Ids()
    acts = pol.on_arrival(ids.req("synth_small", LOW, 0.0, 1.0), view)
    assert dispatches(acts) == [] and WakeAt(0.002) in acts
    view.now = 0.001
    pol.on_arrival(ids.req("synth_small", LOW, 0.001, 1.0), view)
    view.now = 0.002
    (d,) = dispatches(pol.on_timer(view))
    assert len(d.requests) == 2


def test_triton_full_batch_goes_at_once(synthetic_bundle):
    view = FakeView(max_batch=2)
    pol = bind(TritonPolicy(max_queue_delay_ms=50.0), synthetic_bundle, view)
    ids = Ids()
    pol.on_arrival(ids.req("synth_small", LOW, 0.0, 1.0), view)
    (d,) = dispatches(pol.on_arrival(ids.req("synth_small", LOW, 0.0, 1.0), view))
    assert len(d.requests) == 2


def test_triton_rejects_after_class_timeout(synthetic_bundle):
    view = FakeView(blocked={(0, 0), (0, 1)})
    pol = bind(TritonPolicy(max_queue_delay_ms=0.0, timeout_low_ms=5.0), synthetic_bundle,
               view)
    ids = Ids()
    lp = ids.req("synth_small", LOW, 0.0, 1.0)
    hp = ids.req("synth_small", HIGH, 0.0, 0.004)  # timeout: its own deadline budget
    pol.on_arrival(lp, view)
    pol.on_arrival(hp, view)
    view.now = 0.0045  # HP past its deadline, LP within its 5 ms timeout
    acts = pol.on_timer(view)
    assert [a for a in acts if isinstance(a, Reject)][0].requests == (hp,)
    view.now = 0.006
    acts = pol.on_timer(view)
    assert [a for a in acts if isinstance(a, Reject)][0].requests == (lp,)
    assert pol.waiting() == 0


# -- gpulet ----------------------------------------------------------------------------------


def _gpulet_pair(profile, first_deadline_s: float):
    view = FakeView()
    pol = bind(GpuletPolicy(), profile, view)
    ids = Ids()
    (d,) = dispatches(pol.on_arrival(ids.req("synth_medium", LOW, 0.0, first_deadline_s),
                                     view))
    view.dispatch(d)
    view.now = 0.0001
    return pol.on_arrival(ids.req("synth_large", LOW, 0.0001, 1.0), view)


def test_gpulet_refuses_colocation_that_breaks_a_deadline(synthetic_bundle):
    solo = synthetic_bundle.solo_ms("synth_medium", 1) / 1e3
    assert dispatches(_gpulet_pair(synthetic_bundle, 1.1 * solo + 0.0001)) == []


def test_gpulet_colocates_when_deadlines_hold(synthetic_bundle):
    assert len(dispatches(_gpulet_pair(synthetic_bundle, 0.050))) == 1


# -- orion -----------------------------------------------------------------------------------


def test_orion_keeps_the_hp_stream_for_hp(synthetic_bundle):
    view = FakeView()
    pol = bind(OrionPolicy(), synthetic_bundle, view)
    ids = Ids()
    (d,) = dispatches(pol.on_arrival(ids.req("synth_small", LOW, 0.0, 1.0), view))
    assert d.slot == 1  # slot 0 is the HP stream
    view.dispatch(d)
    assert dispatches(pol.on_arrival(ids.req("synth_small", LOW, 0.0, 1.0), view)) == []
    (d,) = dispatches(pol.on_arrival(ids.req("synth_small", HIGH, 0.0, 0.01), view))
    assert d.slot == 0


def test_orion_admits_lp_only_within_duration_budget(synthetic_bundle):
    view = FakeView(blocked={(0, 1)})
    pol = bind(OrionPolicy(lp_budget=0.5, max_slowdown=10.0), synthetic_bundle, view)
    ids = Ids()
    (d,) = dispatches(pol.on_arrival(ids.req("synth_small", HIGH, 0.0, 0.004), view))
    view.dispatch(d)  # HP running; tightest HP budget 4 ms -> LP budget 2 ms
    view.blocked.clear()
    # a large LP batch (~3.1 ms alone) exceeds the budget while HP runs: held back
    assert dispatches(pol.on_arrival(ids.req("synth_large", LOW, 0.0, 1.0), view)) == []
    # a small one (~0.5 ms) fits
    (d,) = dispatches(pol.on_arrival(ids.req("synth_small", LOW, 0.0, 1.0), view))
    assert d.requests[0].model == "synth_small" and d.slot == 1


def test_orion_resource_profile_blocks_similar_work(synthetic_bundle):
    view = FakeView(blocked={(0, 1)})
    pol = bind(OrionPolicy(lp_budget=100.0, max_slowdown=1.0), synthetic_bundle, view)
    ids = Ids()
    (d,) = dispatches(pol.on_arrival(ids.req("synth_small", HIGH, 0.0, 0.004), view))
    view.dispatch(d)
    view.blocked.clear()
    # any predicted slowdown above 1 counts as the same resource profile here
    assert dispatches(pol.on_arrival(ids.req("synth_small", LOW, 0.0, 1.0), view)) == []


def test_orion_hp_slots_above_the_slots_is_refused_at_bind(synthetic_bundle):
    """hp_slots above --slots ran as hp_slots = --slots (shared), silently; equal to it is
    the shared mode and stays accepted."""
    with pytest.raises(UserError, match=r"^policy 'orion': hp_slots=3 exceeds --slots 2 "):
        bind(OrionPolicy(hp_slots=3), synthetic_bundle, FakeView(slots_per_gpu=2))
    assert bind(OrionPolicy(hp_slots=2), synthetic_bundle, FakeView(slots_per_gpu=2)).shared


@pytest.mark.parametrize("argv", [
    ["run", "--policy", "orion", "--param", "hp_slots=5", "--slots", "2"],
    ["compare", "--policies", "orion,fifo", "--param", "orion.hp_slots=5", "--slots", "2",
     "--seeds", "1"],
    ["validate", "--live", "--cpu", "--policy", "orion", "--param", "hp_slots=5"],
])
def test_orion_hp_slots_above_the_slots_is_one_line_before_any_run(tmp_path, capsys, argv):
    from strait_sim.cli.app import main

    out = tmp_path / "out"
    code = main([*argv, "--profile", "synthetic-tiny", "--duration", "1", "--out", str(out),
                 "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: policy 'orion': hp_slots=5 exceeds --slots 2 "
                                 "(slots per GPU); use hp_slots <= 2 (hp_slots = --slots: "
                                 "HP and LP share every slot)"]
    assert not out.exists()  # before any run (or the device): no compare points are left


def test_orion_hp_slots_above_the_slots_is_refused_from_python():
    from strait_sim import api

    with pytest.raises(UserError, match="hp_slots=3 exceeds --slots 1"):
        api.simulate(OrionPolicy(hp_slots=3), "synthetic-tiny", slots=1, duration=1)


@pytest.mark.parametrize("cls,bad", [
    (TritonPolicy, {"max_queue_delay_ms": -1}), (TritonPolicy, {"timeout_low_ms": 0}),
    (ClockworkPolicy, {"window": 0}), (ClockworkPolicy, {"quantile": 1.5}),
    (ReefPolicy, {"preempt_cost_ms": -0.1}), (ReefPolicy, {"order": "random"}),
    (OrionPolicy, {"hp_slots": 0}), (OrionPolicy, {"max_slowdown": 0.5}),
    (GpuletPolicy, {"max_batch": 0}),
])
def test_bad_parameters_raise_at_construction(cls, bad):
    with pytest.raises(ValueError):
        cls(**bad)
