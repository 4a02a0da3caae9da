"""``strait`` on hand-built scenarios where the right decision is known."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from test_policies_fakes import FakeView, Ids, bind, dispatches

from strait_sim.policies.base import Drop
from strait_sim.policies.estimates import FastRls
from strait_sim.policies.strait import StraitPolicy
from strait_sim.requests import HIGH, LOW


def _hp_then_lp(profile, hp_deadline_s: float, **params):
    """HP synth_medium dispatched at t=0 on slot 0; LP synth_large arrives 0.1 ms later."""
    view = FakeView()
    pol = bind(StraitPolicy(**params), profile, view)
    ids = Ids()
    acts = pol.on_arrival(ids.req("synth_medium", HIGH, 0.0, hp_deadline_s), view)
    (d,) = dispatches(acts)
    view.dispatch(d)
    view.now = 0.0001
    lp = ids.req("synth_large", LOW, 0.0001, 1.0)
    return view, pol, pol.on_arrival(lp, view), lp


def test_holds_back_lp_whose_colocation_makes_running_hp_late(synthetic_bundle):
    solo = synthetic_bundle.solo_ms("synth_medium", 1) / 1e3
    # predicted alone ~solo (+copies): on time with 10% to spare; the large LP batch
    # beside it (synthetic slowdown ~1.4x) would push it past its deadline
    view, pol, acts, lp = _hp_then_lp(synthetic_bundle, 1.1 * solo + 0.0001)
    assert dispatches(acts) == []
    assert pol.held_back >= 1 and pol.waiting() == 1
    # once the HP batch completes, nothing is at risk: the LP batch goes
    acts = view.complete(pol, 0, 0, at=0.0013)
    (d,) = dispatches(acts)
    assert d.requests == (lp,)


def test_dispatches_lp_when_hp_deadline_has_room(synthetic_bundle):
    view, pol, acts, lp = _hp_then_lp(synthetic_bundle, 0.010)
    (d,) = dispatches(acts)
    assert d.requests == (lp,) and (d.gpu, d.slot) == (0, 1)
    assert d.predicted_ms is not None and d.predicted_ms > 0


def test_hp_guard_off_colocates_anyway(synthetic_bundle):
    solo = synthetic_bundle.solo_ms("synth_medium", 1) / 1e3
    _, _, acts, _ = _hp_then_lp(synthetic_bundle, 1.1 * solo + 0.0001, hp_guard=False)
    assert len(dispatches(acts)) == 1


def _lookahead(profile, **params):
    view = FakeView()
    pol = bind(StraitPolicy(**params), profile, view)
    # HP traffic seen so far: 1000 per second, budget 2.25 ms (slack ~1.8 ms)
    pol._hp_gap = 0.001
    pol._hp_budget = {"synth_small": 0.00225}
    pol._hp_slack_ms = None
    ids = Ids()
    (d,) = dispatches(pol.on_arrival(ids.req("synth_large", LOW, 0.0, 1.0), view))
    view.dispatch(d)  # nothing else ran: the look-ahead never blocks an idle GPU
    view.now = 0.0001
    return pol.on_arrival(ids.req("synth_large", LOW, 0.0001, 1.0), view)


def test_lookahead_keeps_last_slot_for_likely_hp_arrival(synthetic_bundle):
    # taking the last slot for ~3 ms while HP arrives every 1 ms with 1.8 ms of slack
    assert dispatches(_lookahead(synthetic_bundle)) == []


@pytest.mark.parametrize("params", [{"hp_lookahead": False}, {"hp_risk": 0.95}])
def test_lookahead_off_or_tolerant_dispatches(synthetic_bundle, params):
    assert len(dispatches(_lookahead(synthetic_bundle, **params))) == 1


def test_drops_request_that_cannot_meet_deadline_even_alone(synthetic_bundle):
    view = FakeView()
    ids = Ids()
    doomed = ids.req("synth_large", LOW, 0.0, 0.001)  # solo alone ~3.1 ms
    pol = bind(StraitPolicy(), synthetic_bundle, view)
    acts = pol.on_arrival(doomed, view)
    drops = [a for a in acts if isinstance(a, Drop)]
    assert drops and drops[0].requests == (doomed,) and not dispatches(acts)
    assert pol.waiting() == 0
    pol2 = bind(StraitPolicy(drop_early=False), synthetic_bundle, FakeView())
    assert len(dispatches(pol2.on_arrival(ids.req("synth_large", LOW, 0.0, 0.001),
                                          FakeView()))) == 1


def test_batch_size_is_largest_predicted_to_meet_deadline(synthetic_bundle):
    view = FakeView(blocked={(0, 0), (0, 1)})
    pol = bind(StraitPolicy(), synthetic_bundle, view)
    # Six requests stay queued after a batch of two: they refill the other slot at once,
    # so the estimate is the occupancy-aware one, not the solo service.
    two = pol.est.predict(0.0, 0, "synth_large", 2, 0, queued=6)[0]
    assert two > pol.est.solo_service_ms("synth_large", 2)
    assert pol.est.predict(0.0, 0, "synth_large", 3, 0, queued=5)[0] > two + 0.05
    deadline = two / 1e3 + 0.00005
    ids = Ids()
    reqs = [ids.req("synth_large", HIGH, 0.0, deadline) for _ in range(8)]
    for r in reqs:
        assert pol.on_arrival(r, view) == ()
    view.blocked.clear()
    acts = pol.on_timer(view)
    first = dispatches(acts)[0]
    assert len(first.requests) == 2
    assert first.predicted_ms == pytest.approx(two)


def test_hp_goes_before_earlier_lp_and_edf_within_class(synthetic_bundle):
    view = FakeView(blocked={(0, 0), (0, 1)})
    pol = bind(StraitPolicy(drop_early=False), synthetic_bundle, view)
    ids = Ids()
    lp = ids.req("synth_small", LOW, 0.0, 0.005)
    hp_late = ids.req("synth_small", HIGH, 0.0, 0.050)
    hp_soon = ids.req("synth_medium", HIGH, 0.0, 0.020)
    for r in (lp, hp_late, hp_soon):
        pol.on_arrival(r, view)
    view.blocked = {(0, 1)}
    (d,) = dispatches(pol.on_timer(view))
    assert d.requests == (hp_soon,)


def test_invalid_parameters_are_rejected():
    for bad in ({"safety": 0}, {"hp_risk": 2}, {"max_batch": 0}, {"lp_model_tries": -1},
                {"margin_ms": -1}, {"predictor": ""}):
        with pytest.raises(ValueError):
            StraitPolicy(**bad)


def test_unknown_predictor_is_a_user_error(synthetic_bundle):
    from strait_sim.errors import UserError

    with pytest.raises(UserError, match="valid"):
        bind(StraitPolicy(predictor="nope"), synthetic_bundle, FakeView())


def test_fast_rls_matches_the_predictor_update(synthetic_bundle):
    from strait_sim.predictors.base import CoRunner, Observation
    from strait_sim.predictors.registry import make_predictor

    a = make_predictor("rls", synthetic_bundle)
    b = copy.deepcopy(a)
    fast = FastRls.wrap(b)
    assert fast is not None
    rng = np.random.default_rng(3)
    models = synthetic_bundle.model_names
    for _ in range(200):
        m, cm = models[rng.integers(3)], models[rng.integers(3)]
        size, co_size = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        co = (CoRunner(cm, co_size, float(rng.uniform(0.1, 3.0))),)
        lat = synthetic_bundle.solo_ms(m, size) * float(rng.uniform(1.0, 1.8))
        a.update(Observation(m, size, co, lat))
        fast.update(m, size, co, lat)
    fast.sync()
    np.testing.assert_allclose(b.w, a.w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.P, a.P, rtol=1e-9, atol=1e-12)
    assert b.updates == a.updates == 200


def test_fast_rls_general_and_three_coefficient_steps_agree(synthetic_bundle):
    from strait_sim.predictors.registry import make_predictor

    rng = np.random.default_rng(4)
    a = make_predictor("rls", synthetic_bundle)
    b = copy.deepcopy(a)
    fa, fb = FastRls(a), FastRls(b)
    for _ in range(100):
        x = [float(v) for v in rng.uniform(0.0, 2.0, 3)]
        y = float(rng.uniform(0.0, 1.0))
        fa._update3(x, y)
        fb._update_n(x, y)
    np.testing.assert_allclose(a.w, b.w, rtol=1e-10)
    np.testing.assert_allclose(fa.P, fb.P, rtol=1e-10, atol=1e-14)


def test_simulated_run_records_predictions_and_learns(synthetic_bundle):
    from strait_sim.engine.simulator import SimConfig
    from strait_sim.experiment import run_simulation
    from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

    wl = BasicPoissonWorkload(synthetic_bundle.model_names, rate=1500, duration_s=1.5)
    pol = StraitPolicy()
    res = run_simulation(synthetic_bundle, wl, pol, SimConfig(seed=1))
    df = res.requests
    done = df["status"].astype(str).isin(["on_time", "late"])
    assert done.sum() > 1000
    assert df.loc[done, "predicted_ms"].notna().all()
    assert pol.est.predictor.updates > 0  # the pairs predictor was refined online
    pred = res.summary["prediction"]
    assert pred["predictions"] == int(done.sum())
    assert pred["mape"] < 0.5
    assert res.summary["policy_params"]["predictor_used"] == "pairs"


def test_bundle_without_pairs_falls_back_to_solo_predictor(tmp_path, synthetic_bundle_path):
    import shutil

    from strait_sim.engine.simulator import SimConfig
    from strait_sim.experiment import run_simulation
    from strait_sim.profile_bundle import read_bundle_dir
    from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

    folder = tmp_path / "synthetic-nopairs"
    shutil.copytree(synthetic_bundle_path, folder)
    (folder / "pairs.csv").unlink()
    profile = read_bundle_dir(folder)
    wl = BasicPoissonWorkload(profile.model_names, rate=500, duration_s=0.3)
    res = run_simulation(profile, wl, StraitPolicy(), SimConfig(slots=1, seed=0))
    assert res.summary["policy_params"]["predictor_used"] == "solo"
    assert res.summary["requests"] > 50


@pytest.mark.parametrize("nodes,streamed", [(1, False), (1, True), (2, False)])
def test_held_back_reaches_the_summary(synthetic_bundle, tmp_path, nodes, streamed):
    """The guard's refusals are summary.json's policy_stats.held_back, summed over a
    cluster's nodes (each binds its own copy of the policy); policies keeping no
    counters get no policy_stats key."""
    from strait_sim.engine.simulator import SimConfig
    from strait_sim.experiment import run_simulation
    from strait_sim.policies.fifo import FifoPolicy
    from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

    wl = BasicPoissonWorkload(synthetic_bundle.model_names, rate=1800 * nodes,
                              duration_s=0.5, hp_fraction=0.3, slo=4.0)
    cfg = SimConfig(slots=2, max_batch=8, seed=1, nodes=nodes)
    out = tmp_path / "run" if streamed else None
    pol = StraitPolicy()
    res = run_simulation(synthetic_bundle, wl, pol, cfg, out=out)
    held = res.summary["policy_stats"]["held_back"]
    assert held > 0
    assert (held == pol.held_back) if nodes == 1 else (held > pol.held_back)
    assert "policy_stats" not in run_simulation(synthetic_bundle, wl, FifoPolicy(),
                                                cfg).summary
