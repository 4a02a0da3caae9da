"""The co-location calibration recovers the truth that generated synthetic pair samples.

Every bundle here is drawn by strait_sim.truth.fixtures from known slowdowns with the
noise the development CPU shows (solo CV 0.08); nothing is a measurement. The data volume
each test needs to meet its bound is stated beside it: with CPU noise a key's slowdown is
only as precise as its views allow (see docs/architecture.md, "Calibration").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strait_sim.truth.colocation import ThreeWayRule, calibrate, calibrate_bundle
from strait_sim.truth.compute import ComputeTruth
from strait_sim.truth.fixtures import ColocationTruth, make_bundle

SIMILAR = {"syn_a": 30.0, "syn_b": 40.0, "syn_c": 50.0}  # overlap fraction >= 0.35


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    """24 pair repetitions (12 for the truth model), 60 solo samples, CV 0.08."""
    truth = ColocationTruth(models=SIMILAR, pair_reps=24, solo_reps=60)
    return truth, make_bundle(tmp_path_factory.mktemp("rich") / "b", truth, seed=0)


def test_recovers_every_pair_slowdown_within_5_percent(rich):
    truth, bundle = rich
    cal = calibrate_bundle(bundle)
    assert len(cal.keys) == 81
    for key, fit in cal.keys.items():
        assert fit.slowdown == pytest.approx(truth.slowdown(*key), rel=0.05), key
        assert fit.identified, key
    assert not any(p.fixed_cost_kept for p in cal.pairs.values())  # none in the truth
    assert cal.warnings() == []


def test_reported_intervals_cover_the_truth_mostly(rich):
    truth, bundle = rich
    tab = calibrate_bundle(bundle).table()
    true = np.array([truth.slowdown(r.model, r.batch, r.co_model, r.co_batch)
                     for r in tab.itertuples()])
    cover = np.mean((tab["lo"].to_numpy() <= true) & (true <= tab["hi"].to_numpy()))
    assert cover >= 0.75  # nominal 90%; shrinkage and a fitted baseline cost some


def test_a_fixed_colocation_cost_is_found_where_the_data_show_one(tmp_path):
    truth = ColocationTruth(models=SIMILAR, pair_reps=16, solo_reps=60, fixed_cost=0.06)
    cal = calibrate_bundle(make_bundle(tmp_path / "b", truth, seed=3))
    costs = [p.fixed_cost for p in cal.pairs.values() if p.fixed_cost_kept]
    assert len(costs) >= 7  # of 9 model pairs
    assert 0.03 <= float(np.median(costs)) <= 0.09
    errors = [abs(f.slowdown / truth.slowdown(*k) - 1) for k, f in cal.keys.items()]
    assert np.median(errors) < 0.03


def test_only_the_truth_repetitions_are_read(rich):
    """Odd repetitions belong to the predictors: wrecking them changes nothing here."""
    _, bundle = rich
    pairs = bundle.pairs.copy()
    odd = pairs["rep"] % 2 == 1
    pairs.loc[odd, "latency_ms"] *= 10.0
    a = calibrate(bundle.pairs, bundle.solo).table()
    b = calibrate(pairs, bundle.solo).table()
    pd.testing.assert_frame_equal(a, b)


def test_samples_a_fluid_model_cannot_explain_are_flagged_not_clamped(tmp_path):
    truth = ColocationTruth(models=SIMILAR, pair_reps=6, solo_reps=30)
    bundle = make_bundle(tmp_path / "b", truth, seed=1)
    pairs = bundle.pairs.copy()
    # syn_a@1 beside syn_c@4: every view lost twice the time it overlapped
    bad = (pairs["model"] == "syn_a") & (pairs["batch"] == 1) & \
        (pairs["co_model"] == "syn_c") & (pairs["co_batch"] == 4) & (pairs["overlap_ms"] > 0)
    solo = bundle.solo_ms("syn_a", 1)
    pairs.loc[bad, "latency_ms"] = solo + 2.0 * pairs.loc[bad, "overlap_ms"]
    cal = calibrate(pairs, bundle.solo)
    fit = cal.keys[("syn_a", 1, "syn_c", 4)]
    assert not fit.identified
    assert "overlap" in fit.reason
    assert fit.unexplained > 0 and cal.unexplained >= fit.unexplained
    warning = " ".join(cal.warnings())
    assert "syn_a@1|syn_c@4" in warning
    # it takes its model pair's surface, not a clamp: near the neighbours' values
    neighbours = [f.slowdown for k, f in cal.keys.items()
                  if k[0] == "syn_a" and k[2] == "syn_c" and f.identified]
    assert min(neighbours) * 0.85 <= fit.slowdown <= max(neighbours) * 1.15


def test_unmeasured_batch_sizes_interpolate_monotonically(rich):
    _, bundle = rich
    models = bundle.model_names
    truth = ComputeTruth(bundle, models, 8, np.random.default_rng(0))
    for m in range(len(models)):
        for c in range(len(models)):
            for cb in (1, 2, 4):
                s2, s3, s4 = (truth.pair_slowdown(m, b, c, cb) for b in (2, 3, 4))
                assert min(s2, s4) - 1e-12 <= s3 <= max(s2, s4) + 1e-12
                # beyond the largest measured batch: flat, not extrapolated
                assert truth.pair_slowdown(m, 8, c, cb) == pytest.approx(s4)


def test_slowdown_scale_has_the_measured_spread(tmp_path):
    spread = {}
    for sd in (0.0, 0.35):
        truth = ColocationTruth(models=SIMILAR, pair_reps=24, solo_reps=30, scale_sd=sd)
        bundle = make_bundle(tmp_path / f"b{sd}", truth, seed=2)
        t = ComputeTruth(bundle, bundle.model_names, 4, np.random.default_rng(1))
        draws = np.array([t.sample_slowdown_scale(m, 1) for m in range(3) for _ in range(4000)])
        assert draws.min() >= 0.0
        assert draws.mean() == pytest.approx(1.0, abs=0.05)
        spread[sd] = float(draws.std())
    assert spread[0.35] > spread[0.0] + 0.1
    assert spread[0.0] < 0.2


def test_scale_draws_do_not_move_the_solo_draws(rich):
    _, bundle = rich
    a = ComputeTruth(bundle, bundle.model_names, 4, np.random.default_rng(7))
    b = ComputeTruth(bundle, bundle.model_names, 4, np.random.default_rng(7))
    xs = []
    for _ in range(50):
        b.sample_slowdown_scale(0, 1)
        xs.append((a.sample_solo_ms(1, 2), b.sample_solo_ms(1, 2)))
    assert all(x == y for x, y in xs)


def test_three_runner_rule_matches_a_measured_three_way_point(tmp_path):
    truth = ColocationTruth(models=SIMILAR, pair_reps=8, solo_reps=30,
                            three_way_weight=0.5, triples_reps=4)
    bundle = make_bundle(tmp_path / "b", truth, seed=4)
    cal = calibrate_bundle(bundle)
    assert cal.three_way.points > 0
    assert cal.three_way.weight == pytest.approx(0.5, abs=0.15)
    # the rule predicts the measured 3-way latencies
    assert cal.three_way.rel_error < 0.08
    # and the truth model uses it
    t = ComputeTruth(bundle, bundle.model_names, 4, np.random.default_rng(0))
    e1, e2 = t.pair_slowdown(0, 1, 1, 1) - 1, t.pair_slowdown(0, 1, 2, 1) - 1
    assert t.slowdown(0, 1, [(1, 1), (2, 1)]) == pytest.approx(
        1 + max(e1, e2) + cal.three_way.weight * min(e1, e2))


def test_without_three_way_samples_excesses_add():
    rule = ThreeWayRule(1.0, 0, float("nan"))
    assert rule.combine([0.5, 0.25]) == pytest.approx(1.75)
    assert ThreeWayRule(0.0, 3, 0.0).combine([0.5, 0.25]) == pytest.approx(1.5)


def test_without_baseline_runs_no_fixed_cost_is_claimed(tmp_path):
    """Views without overlap are what tell a fixed cost from a shifted baseline: with
    none, the fixed cost is not fitted, and no key's slowdown runs away."""
    truth = ColocationTruth(models=SIMILAR, pair_reps=6, solo_reps=30, fixed_cost=0.06,
                            sequential=False)
    cal = calibrate_bundle(make_bundle(tmp_path / "b", truth, seed=5))
    assert not any(p.fixed_cost_kept for p in cal.pairs.values())
    assert max(f.effective_slowdown for f in cal.keys.values()) < 3.0
