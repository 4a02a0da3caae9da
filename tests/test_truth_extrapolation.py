"""What a simulated run leaned on: the summary's ``truth`` block and its warning.

The truth model tallies, per batch when its compute ends, the time it overlapped each
co-runner by where that key's slowdown came from (measured, interpolated between measured
batch sizes, measured but unidentified, beyond the measured range, a model pair never
measured). Checked exactly on hand-made tallies, then end to end on simulated runs of
synthetic bundles (deterministic: same seed, same counts).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from strait_sim import api
from strait_sim.cli.app import main
from strait_sim.profile_bundle import read_bundle_dir, write_table
from strait_sim.truth.compute import ORIGINS, ComputeTruth, extrapolation_warning
from strait_sim.truth.fixtures import ColocationTruth, make_bundle

MODELS = {"syn_a": 3.0, "syn_b": 4.0, "syn_c": 5.0}


@pytest.fixture(scope="module")
def gappy_bundle(tmp_path_factory):
    """Pairs at batches 1 and 4 only, and the model pair (syn_a, syn_c) never measured."""
    path = tmp_path_factory.mktemp("extra") / "b"
    make_bundle(path, ColocationTruth(models=MODELS, batches=(1, 4), pair_reps=4,
                                      solo_reps=20), seed=3)
    pairs = pd.read_csv(path / "pairs.csv")
    ac = {("syn_a", "syn_c"), ("syn_c", "syn_a")}
    keep = [(m, c) not in ac for m, c in zip(pairs["model"], pairs["co_model"], strict=True)]
    write_table(path, "pairs.csv", pairs[keep])
    return read_bundle_dir(path, name="gappy")


def test_each_key_is_told_where_its_slowdown_comes_from(gappy_bundle):
    names = ("syn_a", "syn_b", "syn_c")
    t = ComputeTruth(gappy_bundle, names, 8, np.random.default_rng(0))
    measured = next(k for k, f in t.calibration.keys.items() if k[0] == "syn_a"
                    and k[2] == "syn_b" and k[1] == 1 and k[3] == 1)
    expected = "measured" if t.calibration.keys[measured].identified else "unidentified"
    assert ORIGINS[t._origin(0, 1, "syn_b", 1)] == expected
    assert ORIGINS[t._origin(0, 2, "syn_b", 1)] == "interpolated"  # 1 < 2 < 4
    assert ORIGINS[t._origin(0, 8, "syn_b", 1)] == "beyond_range"  # past 4
    assert ORIGINS[t._origin(0, 1, "syn_b", 8)] == "beyond_range"
    assert ORIGINS[t._origin(0, 1, "syn_c", 1)] == "pair_not_measured"

    # one batch beside syn_b@2 for 3 ms and syn_c@1 for 1 ms, one alone, one beside
    # syn_b@8 only: tallies are exact sums
    t.note_compute(0, 1, {7: ["syn_b", 2, 0.003], 8: ["syn_c", 1, 0.001]}, 0.010)
    t.note_compute(0, 1, {}, 0.004)
    t.note_compute(0, 1, {9: ["syn_b", 8, 0.002], 10: ["syn_b", 1, 0.0]}, 0.006)
    block = t.run_extrapolation()
    assert block["compute_s"] == pytest.approx(0.020) and block["batches_computed"] == 3
    assert block["overlap_s"]["interpolated"] == pytest.approx(0.003)
    assert block["overlap_s"]["pair_not_measured"] == pytest.approx(0.001)
    assert block["overlap_s"]["beyond_range"] == pytest.approx(0.002)
    assert block["overlap_s"]["measured"] == 0.0  # a zero overlap is not a co-location
    # each co-located batch is counted once, by the least supported key it met
    assert block["batches_by_origin"] == {"measured": 0, "interpolated": 0,
                                          "unidentified": 0, "beyond_range": 1,
                                          "pair_not_measured": 1}
    assert block["co_located_batches"] == 2
    assert block["extrapolated_share"] == pytest.approx(0.006 / 0.020)
    assert block["model_pairs_never_measured"] == 2  # (a, c) and (c, a)
    line = extrapolation_warning(block)
    assert line is not None and "30% of the simulated compute time" in line
    assert "pair not measured 5%" in line and "beyond range 10%" in line
    assert extrapolation_warning(block, threshold=0.5) is None


def test_a_simulated_run_reports_its_truth_block(gappy_bundle):
    kw = dict(load=1.2, duration=4.0, models="syn_a,syn_b,syn_c")
    r = api.simulate("fifo", gappy_bundle, max_batch=8, pcie=False, seed=1, **kw)
    block = r.summary["truth"]
    assert block["batches_computed"] <= r.summary["engine"]["batches"]
    assert block["batches_computed"] >= r.summary["engine"]["batches"] * 0.9
    assert 0 < block["co_located_batches"] <= block["batches_computed"]
    assert sum(block["overlap_s"].values()) <= block["compute_s"]  # 2 slots: one co-runner
    assert block["overlap_s"]["pair_not_measured"] > 0
    assert block["extrapolated_share"] == pytest.approx(
        sum(v for k, v in block["overlap_s"].items() if k != "measured")
        / block["compute_s"])
    again = api.simulate("fifo", gappy_bundle, max_batch=8, pcie=False, seed=1, **kw)
    assert again.summary["truth"] == block  # deterministic
    one = api.simulate("fifo", gappy_bundle, max_batch=8, pcie=False, seed=1, slots=1, **kw)
    assert one.summary["truth"]["co_located_batches"] == 0
    assert one.summary["truth"]["extrapolated_share"] == 0.0
    off = api.simulate("fifo", gappy_bundle, max_batch=8, pcie=False, seed=1,
                       interference=False, **kw)
    assert off.summary["truth"]["interference"] is False
    assert off.summary["truth"]["co_located_batches"] == 0


def test_run_warns_when_much_of_the_compute_is_extrapolated(gappy_bundle, tmp_path, capsys):
    args = ["run", "--policy", "fifo", "--profile", str(gappy_bundle.path), "--models",
            "syn_a,syn_c", "--load", "1.2", "--duration", "4", "--max-batch", "8",
            "--no-pcie", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    share = summary["truth"]["extrapolated_share"]
    assert share >= 0.25  # syn_a beside syn_c was never measured
    assert "run: warning: " in err and f"{share:.0%} of the simulated compute" in err
    # a run at the measured batch size of measured model pairs: the warning only if the
    # share (unidentified keys count) reaches the threshold
    quiet = ["run", "--policy", "fifo", "--profile", str(gappy_bundle.path), "--models",
             "syn_a,syn_b", "--load", "0.5", "--duration", "4", "--max-batch", "1",
             "--no-pcie", "--quiet", "--out", str(tmp_path / "q")]
    assert main(quiet) == 0
    share = json.loads((tmp_path / "q" / "summary.json").read_text())["truth"][
        "extrapolated_share"]
    assert share < 0.25 and "warning" not in capsys.readouterr().err
