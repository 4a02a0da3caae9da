"""Interference predictors: each recovers the truth of data generated from its own form."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strait_sim.errors import UnknownNameError, UserError
from strait_sim.predictors.base import CoRunner, Observation
from strait_sim.predictors.registry import (
    construct,
    fit_predictor,
    make_predictor,
    predictor_names,
)
from strait_sim.predictors.samples import colocation_samples
from strait_sim.synthetic import SyntheticSpec, make_synthetic_bundle


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STRAIT_SIM_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def samples(synthetic_bundle):
    return colocation_samples(synthetic_bundle)


def true_rate(spec: SyntheticSpec, model: str, co_model: str) -> float:
    """Excess slowdown per unit of overlap fraction in the fluid model: 1 - 1/s."""
    return 1.0 - 1.0 / spec.slowdown_of(model, co_model)


def fluid_table(samples: pd.DataFrame, rate, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """``samples`` with latencies replaced by ``solo * (1 + f * rate(row))`` (+ noise)."""
    rng = np.random.default_rng(seed)
    out = samples.copy()
    r = np.array([rate(m, b, c, cb) for m, b, c, cb in zip(
        out["model"], out["batch"], out["co_model"], out["co_batch"], strict=True)])
    slow = 1.0 + out["overlap_fraction"].to_numpy() * r
    slow *= 1.0 + noise * rng.standard_normal(len(out))
    out["slowdown"] = slow
    out["latency_ms"] = slow * out["solo_ms"].to_numpy()
    return out


# -- the training table ---------------------------------------------------------------------


def test_samples_have_both_views_of_each_run(synthetic_bundle, samples):
    pairs = synthetic_bundle.pairs
    assert len(samples) == 2 * len(pairs)
    assert (samples.groupby("run_id").size() == 2).all()
    row = pairs.iloc[5]
    views = samples[samples["run_id"] == 5].set_index("view")
    assert views.loc["first", "model"] == row["model"]
    assert views.loc["second", "model"] == row["co_model"]
    assert views.loc["second", "latency_ms"] == pytest.approx(row["co_latency_ms"])
    solo = synthetic_bundle.solo_ms(row["model"], int(row["batch"]))
    assert views.loc["first", "solo_ms"] == pytest.approx(solo)
    assert views.loc["first", "slowdown"] == pytest.approx(row["latency_ms"] / solo)
    assert views.loc["first", "overlap_fraction"] == pytest.approx(row["overlap_ms"] / solo)
    assert (samples["started_together"] == (samples["offset_ms"] == 0)).all()


def test_started_together_follows_the_profilers_nominal_offset(tmp_path):
    from strait_sim.profile_bundle import read_bundle_dir

    path = make_synthetic_bundle(tmp_path / "b", SyntheticSpec(reps=4, batches=(1, 2)))
    pairs = pd.read_csv(path / "pairs.csv")
    # Measured offsets of "simultaneous" starts are small but not 0.
    pairs["nominal_offset_frac"] = np.where(pairs["offset_ms"] == 0, 0.0, 0.25)
    pairs["offset_ms"] = pairs["offset_ms"] + 0.01
    pairs.to_csv(path / "pairs.csv", index=False)
    samples = colocation_samples(read_bundle_dir(path))
    assert (samples["started_together"] == (samples["offset_ms"] < 0.0101)).all()
    assert samples["started_together"].any()


# -- zero co-runners, unseen batch sizes, hot path -------------------------------------------


@pytest.mark.parametrize("name", [n for n in predictor_names() if n != "gbt"])
def test_no_co_runner_gives_solo_latency(synthetic_bundle, name):
    p = make_predictor(name, synthetic_bundle)
    for model in synthetic_bundle.model_names:
        for batch in (1, 3, 8):  # 3 is not measured: interpolated like the bundle does
            solo = synthetic_bundle.solo_ms(model, batch)
            assert p.predict(model, batch) == pytest.approx(solo)
            assert p.predict(model, batch, (CoRunner(model, 2, 0.0),)) == pytest.approx(solo)
            assert p.predict(model, batch, (CoRunner(model, 2, solo),)) >= solo * 0.999


# -- coefficient recovery ---------------------------------------------------------------------


def additive_rate(m: str, b: int, c: str, cb: int) -> float:
    """A per-overlap excess rate that is exactly the linear form's: g + victim + aggressor."""
    idx = {"synth_small": 0, "synth_medium": 1, "synth_large": 2}
    return 0.1 + 0.15 * idx[c] + 0.05 * idx[m] + 0.01 * np.log2(cb)


def test_linear_recovers_known_coefficients(synthetic_bundle, samples):
    data = fluid_table(samples, additive_rate)
    p = fit_predictor("linear", data, synthetic_bundle, cache=False)
    # phi = [1, aggressor, victim]: an additive truth is recovered with unit weights
    # (shrinkage of the intensities towards 0 costs a few percent).
    assert p.w[1] == pytest.approx(1.0, abs=0.05)
    assert p.w[2] == pytest.approx(1.0, abs=0.05)
    for m in SyntheticSpec().models:
        for c in SyntheticSpec().models:
            solo = synthetic_bundle.solo_ms(m, 4)
            pred = p.predict(m, 4, (CoRunner(c, 4, 0.5 * solo),))
            truth = solo * (1 + 0.5 * additive_rate(m, 4, c, 4))
            assert pred == pytest.approx(truth, rel=0.005)


def test_linear_fits_the_fluid_model_of_the_synthetic_bundle(synthetic_bundle, samples):
    spec = SyntheticSpec()
    data = fluid_table(samples, lambda m, b, c, cb: true_rate(spec, m, c))
    p = fit_predictor("linear", data, synthetic_bundle, cache=False)
    # Several co-runners add their excess slowdowns.
    solo = synthetic_bundle.solo_ms("synth_small", 4)
    two = p.predict("synth_small", 4, (CoRunner("synth_large", 4, 0.5 * solo),
                                       CoRunner("synth_medium", 4, 0.25 * solo)))
    one_a = p.predict("synth_small", 4, (CoRunner("synth_large", 4, 0.5 * solo),))
    one_b = p.predict("synth_small", 4, (CoRunner("synth_medium", 4, 0.25 * solo),))
    assert two == pytest.approx(one_a + one_b - solo)
    for m in spec.models:
        for c in spec.models:
            solo = synthetic_bundle.solo_ms(m, 4)
            pred = p.predict(m, 4, (CoRunner(c, 4, 0.5 * solo),))
            truth = solo * (1 + 0.5 * true_rate(spec, m, c))
            assert pred == pytest.approx(truth, rel=0.02)


def test_gpulet_recovers_its_coefficients_from_utilization(synthetic_bundle):
    rng = np.random.default_rng(3)
    models = list(synthetic_bundle.model_names)
    util = {(m, b): tuple(rng.uniform(0.1, 0.9, 3)) for m in models for b in (1, 2, 4, 8)}
    coef = np.array([0.2, 0.5, 0.1, 0.8, 0.9])  # l2_self, l2_other, dram_self, dram_other, c
    rows = []
    for i in range(400):
        m, c = models[i % 3], models[(i // 3) % 3]
        b, cb = (1, 2, 4, 8)[i % 4], (1, 2, 4, 8)[(i // 4) % 4]
        own, other = util[(m, b)], util[(c, cb)]
        s = max(1.0, coef @ np.array([own[1], other[1], own[2], other[2], 1.0]))
        solo = synthetic_bundle.solo_ms(m, b)
        rows.append({"run_id": i, "view": "first", "model": m, "batch": b, "solo_ms": solo,
                     "co_model": c, "co_batch": cb, "co_solo_ms": 1.0, "offset_ms": 0.0,
                     "rep": 0, "overlap_ms": solo, "overlap_fraction": 1.0,
                     "latency_ms": s * solo, "slowdown": s,
                     **{f"util_{k}": own[j] for j, k in enumerate(("sm", "l2", "dram"))},
                     **{f"co_util_{k}": other[j] for j, k in enumerate(("sm", "l2", "dram"))}})
    p = fit_predictor("gpulet", pd.DataFrame(rows), synthetic_bundle, cache=False)
    assert p.feature_names == ("l2_self", "l2_other", "dram_self", "dram_other", "const")
    np.testing.assert_allclose(p.coef, coef, atol=1e-3)
    # Coarse: the whole latency is scaled, however short the overlap.
    solo = synthetic_bundle.solo_ms(models[0], 2)
    full = p.predict(models[0], 2, (CoRunner(models[2], 4, solo),))
    tiny = p.predict(models[0], 2, (CoRunner(models[2], 4, 0.01 * solo),))
    assert full == pytest.approx(tiny)
    # The largest slowdown over co-runners, not the sum.
    both = p.predict(models[0], 2, (CoRunner(models[2], 4, solo), CoRunner(models[1], 1, solo)))
    assert both == pytest.approx(solo * max(p.pair_slowdown(models[0], 2, models[2], 4),
                                            p.pair_slowdown(models[0], 2, models[1], 1)))


def test_gpulet_falls_back_to_learned_intensities_without_utilization(synthetic_bundle):
    p = make_predictor("gpulet", synthetic_bundle)
    assert p.feature_names == ("victim_self", "aggressor_other", "const")
    assert p.fit_rows > 0


def test_rls_learns_from_scratch_online(synthetic_bundle, samples):
    data = fluid_table(samples, additive_rate)
    ref = fit_predictor("linear", data, synthetic_bundle, cache=False)
    p = fit_predictor("rls", data, synthetic_bundle, cache=False, forgetting=1.0,
                      initial_covariance=1e4)
    p.reset(len(p.w))
    assert p.w == [0.0, 0.0, 0.0]
    x, y = p.design(data)
    for xi, yi in zip(x, y, strict=True):
        p.update_xy(xi, float(yi))
    np.testing.assert_allclose(p.w, ref.w, atol=1e-3)


def test_sgd_converges_online_from_a_wrong_start(synthetic_bundle, samples):
    data = fluid_table(samples, additive_rate)
    ref = fit_predictor("linear", data, synthetic_bundle, cache=False)
    p = fit_predictor("sgd", data, synthetic_bundle, cache=False, learning_rate=0.5)
    p.w = [0.0, 0.0, 0.0]
    rng = np.random.default_rng(0)
    for i in rng.permutation(len(data))[:2000]:
        r = data.iloc[i]
        p.update(Observation(r["model"], int(r["batch"]),
                             (CoRunner(r["co_model"], int(r["co_batch"]), r["overlap_ms"]),),
                             r["latency_ms"]))
    assert p.updates > 1500
    np.testing.assert_allclose(p.w, ref.w, atol=0.05)


def test_pairs_a_tiny_overlap_barely_moves_the_rate(synthetic_bundle):
    """A batch that overlapped its co-runner for 0.1% of its solo time says almost nothing
    about the pair's rate: its residual (solo noise) moved k by step * r / O, to the clamp
    (a 20x slowdown predicted for every later batch of the pair). The update is now at most
    step * |r| / (2 * damping * solo), whatever the overlap."""
    p = make_predictor("pairs", synthetic_bundle)
    solo = p.solo("synth_small", 2)
    full = (CoRunner("synth_large", 4, solo),)
    k0 = p.pair_rate("synth_small", 2, "synth_large", 4)
    before = p.predict("synth_small", 2, full)
    noise = 0.15 * solo  # a residual of 15% of solo, as solo noise gives
    p.update(Observation("synth_small", 2, (CoRunner("synth_large", 4, 1e-3 * solo),),
                         solo + noise))
    k1 = p.pair_rate("synth_small", 2, "synth_large", 4)
    assert abs(k1 - k0) <= p.step * noise / (2 * p.damping * solo) + 1e-12
    assert p.predict("synth_small", 2, full) == pytest.approx(before, rel=0.01)
    # with damping=0 (the unregularised step) the same observation throws k to the clamp
    bare = make_predictor("pairs", synthetic_bundle, damping=0.0)
    bare.update(Observation("synth_small", 2, (CoRunner("synth_large", 4, 1e-3 * solo),),
                            solo + noise))
    assert bare.pair_rate("synth_small", 2, "synth_large", 4) == 0.95


def test_pairs_still_learns_a_changed_rate_from_full_overlaps(synthetic_bundle):
    p = make_predictor("pairs", synthetic_bundle)
    solo = p.solo("synth_small", 2)
    co = (CoRunner("synth_large", 4, 1.5 * solo),)
    target = solo + 0.6 * 1.5 * solo  # the pair's rate is now k = 0.6
    for _ in range(150):
        p.update(Observation("synth_small", 2, co, target))
    assert p.pair_rate("synth_small", 2, "synth_large", 4) == pytest.approx(0.6, abs=1e-3)
    with pytest.raises(UserError, match="'damping' must be in"):
        construct("pairs", damping=-1.0)


def test_ewma_converges_to_the_observed_ratio(synthetic_bundle):
    p = make_predictor("ewma", synthetic_bundle, alpha=0.3)
    co = (CoRunner("synth_large", 4, 1.0),)
    coarse = p.coarse.predict("synth_small", 2, co)
    for _ in range(40):
        p.update(Observation("synth_small", 2, co, 1.3 * coarse))
    assert p.predict("synth_small", 2, co) == pytest.approx(1.3 * coarse, rel=1e-3)
    # Another pair keeps its own correction.
    other = (CoRunner("synth_medium", 4, 1.0),)
    assert p.predict("synth_small", 2, other) != pytest.approx(
        1.3 * p.coarse.predict("synth_small", 2, other), rel=1e-3)


def test_gbt_recovers_fluid_rates(synthetic_bundle, samples):
    spec = SyntheticSpec()
    data = fluid_table(samples, lambda m, b, c, cb: true_rate(spec, m, c))
    p = fit_predictor("gbt", data, synthetic_bundle, cache=False, n_estimators=100,
                      learning_rate=0.2)
    assert p.predict("synth_small", 3) == pytest.approx(synthetic_bundle.solo_ms("synth_small", 3))
    for m in spec.models:
        for c in spec.models:
            solo = synthetic_bundle.solo_ms(m, 2)
            pred = p.predict(m, 2, (CoRunner(c, 8, 0.6 * solo),))
            truth = solo * (1 + 0.6 * true_rate(spec, m, c))
            assert pred == pytest.approx(truth, rel=0.02)


# -- adaptation after an abrupt change --------------------------------------------------------


def test_rls_with_forgetting_adapts_after_an_abrupt_change(synthetic_bundle, samples):
    static = fit_predictor("linear", samples, synthetic_bundle, cache=False)
    rls = fit_predictor("rls", samples, synthetic_bundle, cache=False, forgetting=0.95)
    slow_rls = fit_predictor("rls", samples, synthetic_bundle, cache=False, forgetting=1.0)
    w_new = np.array(static.w) * 2.5 + np.array([0.3, 0.0, 0.0])  # the workload changes
    stream = samples.sample(n=400, random_state=1).reset_index(drop=True)
    phi = static.features.matrix(stream)
    slow = 1.0 + stream["overlap_fraction"].to_numpy() * (phi @ w_new)
    errors = {"static": [], "rls": [], "rls-no-forgetting": []}
    for i, r in stream.iterrows():
        co = (CoRunner(r["co_model"], int(r["co_batch"]), r["overlap_ms"]),)
        truth = slow[i] * r["solo_ms"]
        for key, p in (("static", static), ("rls", rls), ("rls-no-forgetting", slow_rls)):
            errors[key].append(abs(p.predict(r["model"], int(r["batch"]), co) - truth) / truth)
            p.update(Observation(r["model"], int(r["batch"]), co, truth))
    late = {k: float(np.mean(v[200:])) for k, v in errors.items()}
    assert late["rls"] < 0.01 < late["static"] / 5
    assert late["rls"] < late["rls-no-forgetting"] / 2


# -- registry, parameters, cache --------------------------------------------------------------


def test_unknown_predictor_and_bad_parameters(synthetic_bundle):
    with pytest.raises(UnknownNameError, match="unknown predictor 'nope'; valid: "):
        make_predictor("nope", synthetic_bundle)
    with pytest.raises(UserError, match="'forgetting' must be in"):
        construct("rls", forgetting=1.5)
    with pytest.raises(UserError, match="has no parameter 'alpha'"):
        construct("rls", alpha=0.1)
    with pytest.raises(UserError, match="must be a number"):
        construct("sgd", learning_rate="fast")


@pytest.mark.parametrize(("param", "value", "message"), [
    ("seed", "abc", "'seed' must be a whole number, got 'abc'"),
    ("seed", float("nan"), "'seed' must be a whole number"),
    ("seed", 1.5, "'seed' must be a whole number"),
    ("seed", -1, r"'seed' must be in 0\.\.4,294,967,295, got -1"),
    ("seed", 5_000_000_000, "32-bit seeds"),
    ("n_estimators", 1e9, r"'n_estimators' must be in 1\.\.10,000.*exhaust memory"),
    ("n_estimators", 1.5, "'n_estimators' must be a whole number"),
    ("max_depth", 2.7, "'max_depth' must be a whole number"),
    ("max_depth", 0, r"'max_depth' must be in 1\.\.32"),
])
def test_gbt_whole_number_parameters_are_checked_not_truncated(param, value, message):
    with pytest.raises(UserError, match=message):
        construct("gbt", **{param: value})


def test_errors_name_the_predictor_asked_for_not_the_one_it_wraps(synthetic_bundle, samples):
    with pytest.raises(UserError, match="^predictor 'ewma': parameter 'ridge'"):
        construct("ewma", ridge=float("nan"))
    with pytest.raises(UserError, match="^predictor 'pairs': parameter 'ridge'"):
        construct("pairs", ridge=-1.0)
    with pytest.raises(UserError, match="^predictor 'pairs': 2 training samples"):
        fit_predictor("pairs", samples.head(2), synthetic_bundle, cache=False)
    with pytest.raises(UserError, match="^predictor 'ewma': 2 training samples"):
        fit_predictor("ewma", samples.head(2), synthetic_bundle, cache=False)
    with pytest.raises(UserError, match="has no parameter 'label'"):
        construct("linear", label="x")


def test_bundle_without_pairs_is_a_user_error(tmp_path):
    path = make_synthetic_bundle(tmp_path / "b", SyntheticSpec(reps=2, batches=(1, 2)))
    (path / "pairs.csv").unlink()
    from strait_sim.profile_bundle import read_bundle_dir

    bundle = read_bundle_dir(path)
    assert make_predictor("solo", bundle).predict("synth_small", 1) > 0
    with pytest.raises(UserError, match="no co-located samples"):
        make_predictor("rls", bundle)


def test_fits_are_cached_and_corrupt_entries_refit(synthetic_bundle, tmp_path, monkeypatch):
    from strait_sim.predictors import cache as cache_mod
    from strait_sim.predictors.rls import RlsPredictor

    first = make_predictor("rls", synthetic_bundle, forgetting=0.9)
    entries = list((tmp_path / "cache" / "predictors").glob("rls-*.pkl"))
    assert len(entries) == 1
    calls = []
    real_fit = RlsPredictor.fit
    monkeypatch.setattr(RlsPredictor, "fit", lambda self, s, p: calls.append(1) or
                        real_fit(self, s, p))
    again = make_predictor("rls", synthetic_bundle, forgetting=0.9)
    assert calls == [] and again is not first and again.w == first.w
    # Online state is never shared between the objects handed out.
    again.update(Observation("synth_small", 1, (CoRunner("synth_large", 8, 0.3),), 5.0))
    assert make_predictor("rls", synthetic_bundle, forgetting=0.9).w == first.w
    # Other parameters: another entry.
    make_predictor("rls", synthetic_bundle, forgetting=0.8)
    assert len(calls) == 1
    entries[0].write_bytes(b"not a pickle")
    refit = make_predictor("rls", synthetic_bundle, forgetting=0.9)
    assert len(calls) == 2 and refit.w == first.w
    assert cache_mod.cache_dir() == tmp_path / "cache" / "predictors"


def test_predict_is_cheap_enough_to_call_in_a_loop(synthetic_bundle):
    """Not a timing test: the hot path must not go through pandas (memoised dicts)."""
    p = make_predictor("rls", synthetic_bundle)
    co = (CoRunner("synth_large", 4, 1.0), CoRunner("synth_medium", 2, 0.5))
    first = p.predict("synth_small", 2, co)
    assert all(p.predict("synth_small", 2, co) == first for _ in range(1000))
    assert ("synth_small", 2, "synth_large", 4) in p.features._memo


def test_bundles_with_utilization_use_it(tmp_path):
    """A GPU bundle's utilization.csv feeds gpulet (GPUlet's own features) and the
    fine-grained models (as extra features); the numbers here are made up for the test."""
    from strait_sim.profile_bundle import read_bundle_dir, write_table

    spec = SyntheticSpec(reps=4, batches=(1, 4))
    path = make_synthetic_bundle(tmp_path / "b", spec, seed=2)
    rows = [{"model": m, "batch": b, "sm_pct": 20.0 + 10 * i, "l2_pct": 10.0 + 5 * i + b,
             "dram_pct": 30.0 - 5 * i} for i, m in enumerate(spec.models) for b in (1, 4)]
    write_table(path, "utilization.csv", pd.DataFrame(rows))
    bundle = read_bundle_dir(path)
    samples = colocation_samples(bundle)
    assert {"util_l2", "co_util_dram"} <= set(samples.columns)
    first = samples.iloc[0]
    assert first["util_l2"] == pytest.approx(
        (10.0 + 5 * list(spec.models).index(first["model"]) + first["batch"]) / 100)
    g = make_predictor("gpulet", bundle)
    assert g.feature_names[:2] == ("l2_self", "l2_other")
    lin = make_predictor("rls", bundle)
    assert "co_dram" in lin.feature_names and len(lin.w) == len(lin.feature_names)
    co = (CoRunner("synth_large", 2, 1.0),)  # batch 2 not profiled: nearest batch's row
    assert lin.predict("synth_small", 2, co) > bundle.solo_ms("synth_small", 2)
    lin.update(Observation("synth_small", 2, co, 2.0))


# -- out-of-sample fits ------------------------------------------------------------------------


def test_predictors_fit_only_the_odd_repetitions(synthetic_bundle, samples):
    """The truth model learns from even reps; the predictors must not see them."""
    p = make_predictor("linear", synthetic_bundle)
    assert p.samples_used == "out-of-sample"
    odd = samples[samples["rep"] % 2 == 1].reset_index(drop=True)
    assert 0 < len(odd) < len(samples)
    on_odd = fit_predictor("linear", odd, synthetic_bundle, cache=False)
    on_all = fit_predictor("linear", samples, synthetic_bundle, cache=False)
    assert p.w == pytest.approx(on_odd.w)
    assert p.w != pytest.approx(on_all.w)
    assert make_predictor("solo", synthetic_bundle).samples_used == "none"


def test_a_bundle_with_one_repetition_is_flagged_in_sample(tmp_path):
    path = make_synthetic_bundle(tmp_path / "b", SyntheticSpec(reps=2, batches=(1, 2)))
    pairs = pd.read_csv(path / "pairs.csv")
    pairs[pairs["rep"] == 0].to_csv(path / "pairs.csv", index=False)
    from strait_sim.profile_bundle import read_bundle_dir

    p = make_predictor("rls", read_bundle_dir(path))
    assert p.samples_used == "in-sample"


@pytest.mark.parametrize("param", ["damping", "step", "ridge"])
def test_a_boolean_is_not_a_number_for_a_predictor(param):
    """``predictor_params={"damping": true}`` ran with damping 1.0 (float(True)) and
    recorded true in summary.json."""
    with pytest.raises(UserError, match=f"parameter '{param}' must be a number, got True"):
        construct("pairs", **{param: True})
    with pytest.raises(UserError, match="'n_estimators' must be a whole number, got True"):
        construct("gbt", n_estimators=True)
