"""The transfer predictor and the accuracy study (``strait-sim predict evaluate``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from strait_sim.cli.app import main
from strait_sim.errors import UserError
from strait_sim.predictors.evaluate import evaluate, make_scenarios
from strait_sim.predictors.samples import colocation_samples
from strait_sim.predictors.transfer import TransferPredictor
from strait_sim.profile_bundle import read_bundle_dir
from strait_sim.synthetic import SyntheticSpec, make_synthetic_bundle

FAST = "solo,gpulet,linear,rls"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STRAIT_SIM_CACHE", str(tmp_path / "cache"))


# -- transfers ------------------------------------------------------------------------------


def test_transfer_predictor_reproduces_fair_sharing(tmp_path):
    spec = SyntheticSpec(reps=2, batches=(1, 2), bandwidth_gbps={"h2d": 20.0, "d2h": 6.0},
                         fixed_ms={"h2d": 0.02, "d2h": 0.005}, noise_cv=0.01)
    bundle = read_bundle_dir(make_synthetic_bundle(tmp_path / "b", spec, seed=4))
    tp = TransferPredictor.from_profile(bundle)
    for d in ("h2d", "d2h"):
        bw = spec.bandwidth_gbps[d] * 1e9 / 1e3
        assert tp.bandwidth_bytes_per_ms[d] == pytest.approx(bw, rel=0.02)
        assert tp.fixed_ms[d] == pytest.approx(spec.fixed_ms[d], rel=0.1, abs=0.002)
        one = tp.predict_ms(d, 64 << 20, 0)
        three = tp.predict_ms(d, 64 << 20, 2)  # two already in flight: a third of the link
        assert (three - tp.fixed_ms[d]) == pytest.approx(3 * (one - tp.fixed_ms[d]))
        assert one == pytest.approx(spec.fixed_ms[d] + (64 << 20) / bw, rel=0.02)
    with pytest.raises(UserError, match="unknown transfer direction 'up'"):
        tp.predict_ms("up", 10, 0)


def test_transfer_predictor_needs_transfers(tmp_path):
    path = make_synthetic_bundle(tmp_path / "b", SyntheticSpec(reps=2, batches=(1, 2)))
    (path / "transfers.csv").unlink()
    with pytest.raises(UserError, match="has no transfers.csv"):
        TransferPredictor.from_profile(read_bundle_dir(path))


# -- splits ---------------------------------------------------------------------------------


def test_scenarios_keep_runs_whole_and_differ_as_promised(synthetic_bundle):
    samples = colocation_samples(synthetic_bundle)
    scen = {s.name: s for s in make_scenarios(samples, seed=3)}
    assert set(scen) == {"random", "higher-load", "unseen-pairs", "chronological",
                         "unseen-concurrency"}
    assert not scen["unseen-concurrency"].runnable
    for name in ("random", "higher-load", "unseen-pairs", "chronological"):
        s = scen[name]
        assert not (s.train & s.test).any() and (s.train | s.test).all()
        train_runs = set(samples.loc[s.train, "run_id"])
        assert train_runs.isdisjoint(samples.loc[s.test, "run_id"])
        assert s.test.sum() == pytest.approx(0.25 * len(samples), rel=0.35)
    hl = scen["higher-load"]
    load = samples["overlap_ms"] / samples.groupby("run_id")["solo_ms"].transform("min")
    assert load[hl.test].min() >= load[hl.train].max() - 1e-12
    chrono = scen["chronological"]
    assert samples.loc[chrono.test, "run_id"].min() > samples.loc[chrono.train, "run_id"].max()
    up = scen["unseen-pairs"]

    def pairs(mask):
        return {tuple(sorted(p)) for p in zip(samples.loc[mask, "model"],
                                              samples.loc[mask, "co_model"], strict=True)}

    assert pairs(up.train).isdisjoint(pairs(up.test))
    # Deterministic in the seed, different across seeds.
    again = {s.name: s for s in make_scenarios(samples, seed=3)}
    assert (again["random"].test == scen["random"].test).all()
    other = {s.name: s for s in make_scenarios(samples, seed=4)}
    assert not (other["random"].test == scen["random"].test).all()


# -- the study --------------------------------------------------------------------------------


def test_evaluation_shows_coarse_models_overpredict_partial_overlap(synthetic_bundle):
    result = evaluate(synthetic_bundle, FAST.split(","), seed=0)
    acc = result.accuracy.set_index(["scenario", "predictor"])
    for scen in ("random", "higher-load", "unseen-pairs", "chronological"):
        assert acc.loc[(scen, "linear"), "mape_pct"] < acc.loc[(scen, "gpulet"), "mape_pct"]
        assert acc.loc[(scen, "gpulet"), "mape_pct"] < acc.loc[(scen, "solo"), "mape_pct"]
        assert acc.loc[(scen, "solo"), "bias_pct"] < 0  # ignoring interference under-predicts
    ov = result.by_overlap.set_index(["scenario", "predictor", "overlap_fraction"])
    partial = ("random", "gpulet", "[0.25, 0.5)")
    assert ov.loc[partial, "bias_pct"] > 2.0
    assert abs(ov.loc[("random", "linear", "[0.25, 0.5)"), "bias_pct"]) < 1.5
    curves = result.curves
    assert set(curves["predictor"]) == set(FAST.split(","))
    assert curves.groupby(["scenario", "predictor"])["observations"].max().eq(
        acc["n_test"].groupby(level=[0, 1]).first()).all()
    tr = result.transfers.set_index(["direction", "scenario", "model", "sizes"])
    assert set(tr.index.get_level_values("model")) == {"fair-share", "no-contention",
                                                       "partial-sharing"}
    # The synthetic link shares fairly: the fair-share model wins on unseen concurrency,
    # and the fitted share per extra copy is close to 1.
    unseen = tr.xs(("h2d", "unseen-concurrency"), level=("direction", "scenario"))
    assert unseen.loc[("fair-share", "all"), "mape_pct"] < 5
    assert unseen.loc[("no-contention", "all"), "mape_pct"] > 20
    share = result.transfer_fit.set_index("direction")["fitted_share_per_extra_copy"]
    assert share.between(0.9, 1.1).all()
    # The fixture's noise is lognormal with a 3% CV: the replicate floor must show that.
    noise = result.noise.set_index("samples")
    assert 1.0 < noise.loc["solo runs", "mape_pct"] < 5.0
    assert 1.0 < noise.loc["co-located runs", "mape_pct"] < 6.0


def test_cli_evaluate_writes_table_and_plots(tmp_path, capsys):
    out = tmp_path / "ev"
    args = ["predict", "evaluate", "--profile", "synthetic-tiny", "--out", str(out),
            "--predictors", FAST, "--seed", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "higher-load" in printed and "rls" in printed and "MAPE" in printed
    for f in ("accuracy.csv", "scenarios.csv", "learning_curve.csv", "error_by_overlap.csv",
              "transfers.csv", "transfer_fit.csv", "accuracy.png", "learning_curve.png",
              "error_by_overlap.png", "summary.json", "table.md", "noise_floor.csv"):
        assert (out / f).is_file(), f
    acc = pd.read_csv(out / "accuracy.csv")
    assert list(acc.columns[:5]) == ["scenario", "predictor", "online", "n_train", "n_test"]
    assert {"mape_pct", "mse_ms2", "p90_rel_err_pct", "max_rel_err_pct"} <= set(acc.columns)
    assert len(acc) == 4 * 4
    assert np.isfinite(acc["mape_pct"]).all()
    table = (out / "table.md").read_text()
    assert table.count("\n| random |") == 4 and "| fair-share |" in table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["synthetic"] is True and summary["seed"] == 1
    # Same seed: identical table (the second run also reads the fit cache).
    first = (out / "accuracy.csv").read_bytes()
    assert main(args) == 2  # an earlier result is replaced only when asked
    assert main([*args, "--overwrite"]) == 0
    assert (out / "accuracy.csv").read_bytes() == first
    assert main(["predict", "list"]) == 0
    assert "forgetting" in capsys.readouterr().out


def _one_line_error(capsys, args, pattern):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert pattern in err, err


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    _one_line_error(capsys, ["predict", "evaluate", "--profile", "synthetic-tiny", "--out",
                             str(out), "--predictors", "solo,bogus"],
                    "unknown predictor 'bogus'")
    nopairs = make_synthetic_bundle(tmp_path / "nopairs", SyntheticSpec(reps=2, batches=(1,)))
    (nopairs / "pairs.csv").unlink()
    _one_line_error(capsys, ["predict", "evaluate", "--profile", str(nopairs), "--out",
                             str(out)], "no co-located samples")
    few = make_synthetic_bundle(tmp_path / "few", SyntheticSpec(reps=2, batches=(1,)))
    pairs = pd.read_csv(few / "pairs.csv")
    pairs.head(12).to_csv(few / "pairs.csv", index=False)
    _one_line_error(capsys, ["predict", "evaluate", "--profile", str(few), "--out", str(out),
                             "--predictors", "solo"], "split 'random' has")
    assert not out.exists()  # nothing half-written
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    _one_line_error(capsys, ["predict", "evaluate", "--profile", "synthetic-tiny", "--out",
                             str(foreign), "--predictors", "solo"], "holds no strait-sim result")
    assert (foreign / "keep.txt").read_text() == "mine"


def test_cli_fit_shows_coefficients_and_rejects_bad_params(capsys):
    assert main(["predict", "fit", "rls", "--profile", "synthetic-tiny",
                 "--param", "forgetting=0.9"]) == 0
    out = capsys.readouterr().out
    assert "co_aggressor" in out and "copy h2d" in out
    _one_line_error(capsys, ["predict", "fit", "rls", "--profile", "synthetic-tiny",
                             "--param", "forgetting=2"], "'forgetting' must be in")
    _one_line_error(capsys, ["predict", "fit", "rls", "--profile", "synthetic-tiny",
                             "--param", "forgetting"], "expected key=value")


def test_stream_learns_only_from_finished_runs(synthetic_bundle):
    from strait_sim.predictors.evaluate import stream_predictions

    class Recorder:
        online = True

        def __init__(self):
            self.log = []

        def predict(self, model, batch, co):
            self.log.append("p")
            return 1.0

        def update(self, obs):
            self.log.append("u")

    test = colocation_samples(synthetic_bundle).head(6)  # three runs, two views each
    rec = Recorder()
    preds = stream_predictions(rec, test)
    assert list(preds) == [1.0] * 6
    assert "".join(rec.log) == "pp" + "uupp" + "uupp"


def test_bundle_without_transfers_still_evaluates_interference(tmp_path, capsys):
    path = make_synthetic_bundle(tmp_path / "b", SyntheticSpec(reps=4, batches=(1, 2)))
    (path / "transfers.csv").unlink()
    out = tmp_path / "ev"
    assert main(["predict", "evaluate", "--profile", str(path), "--out", str(out),
                 "--predictors", "solo,linear"]) == 0
    assert "no transfers.csv" in capsys.readouterr().out
    assert (out / "accuracy.csv").is_file() and not (out / "transfers.csv").exists()


def test_cli_evaluate_seed_beyond_32_bits_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "ev"
    args = ["predict", "evaluate", "--profile", "synthetic-tiny", "--out", str(out),
            "--predictors", "gbt", "--seed", str(2**32)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--seed must be in 0..4294967295" in err and "Traceback" not in err
    assert not out.exists()
