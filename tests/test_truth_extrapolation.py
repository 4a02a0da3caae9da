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
    # a part above 0 that rounds to 0% is "<1%" (it read "0%" beside a headline counting it)
    tiny = {**block, "overlap_s": {**block["overlap_s"], "unidentified": 0.00002}}
    assert "unidentified <1%" in extrapolation_warning(tiny)


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


def test_a_second_beside_several_co_runners_counts_once_in_the_shares(gappy_bundle):
    """3+ slots: the overlaps stay co-runner-seconds, the shares are of compute time."""
    names = ("syn_a", "syn_b", "syn_c")
    t = ComputeTruth(gappy_bundle, names, 8, np.random.default_rng(0))
    _, mb, mc, mcb = next(k for k, f in t.calibration.keys.items()
                          if k[0] == "syn_a" and k[1] == 1 and f.identified)
    assert ORIGINS[t._origin(0, 1, mc, mcb)] == "measured"
    # syn_a@1 computes [0, 10] ms beside A (measured) [0, 4], B (syn_b@2, interpolated)
    # [2, 7], C (syn_c@1, pair not measured) [5, 9], D (syn_b@8, beyond range) [6, 7]:
    # beside anyone [0, 9], beside an extrapolated key [2, 9]
    co = {1: [mc, mcb, 0.004], 2: ["syn_b", 2, 0.005], 3: ["syn_c", 1, 0.004],
          4: ["syn_b", 8, 0.001]}
    crowded = [(0.002, (1, 2)), (0.001, (2, 3)), (0.001, (2, 3, 4))]
    t.note_compute(0, 1, co, 0.010, crowded)
    # a 4 ms batch beside two extrapolated co-runners the whole time (once: 200%)
    t.note_compute(0, 1, {5: ["syn_c", 1, 0.004], 6: ["syn_b", 2, 0.004]}, 0.004,
                   [(0.004, (5, 6))])
    block = t.run_extrapolation()
    assert block["compute_s"] == pytest.approx(0.014)
    assert block["overlap_s"] == pytest.approx({  # one per co-runner, as before
        "measured": 0.004, "interpolated": 0.009, "unidentified": 0.0,
        "beyond_range": 0.001, "pair_not_measured": 0.008})
    assert block["co_located_share"] == pytest.approx((0.009 + 0.004) / 0.014, rel=1e-12)
    assert block["extrapolated_share"] == pytest.approx((0.007 + 0.004) / 0.014,
                                                        rel=1e-12)
    assert block["batches_by_origin"]["pair_not_measured"] == 2
    line = extrapolation_warning(block)
    assert line is not None and line.startswith("79% of the simulated compute time")


def _beside_s(starts: np.ndarray, ends: np.ndarray, i: int, others: np.ndarray) -> float:
    """Seconds of batch i's compute [starts[i], ends[i]] covered by the union of the
    compute intervals of the batches ``others`` (a boolean mask): computed from the
    timeline, independently of the device's bookkeeping."""
    s, e = starts[i], ends[i]
    mask = others & (starts < e) & (ends > s)
    mask[i] = False
    spans = sorted(zip(np.maximum(starts[mask], s), np.minimum(ends[mask], e), strict=True))
    total, lo, hi = 0.0, None, None
    for a, b in spans:
        if hi is None or a > hi:
            total += 0.0 if hi is None else hi - lo
            lo, hi = a, b
        else:
            hi = max(hi, b)
    return total + (0.0 if hi is None else hi - lo)


@pytest.mark.parametrize("slots", [3, 4])
def test_with_three_or_more_slots_the_shares_are_of_compute_time(gappy_bundle, slots):
    names = ("syn_a", "syn_b", "syn_c")
    r = api.simulate("fifo", gappy_bundle, max_batch=8, pcie=False, seed=1, slots=slots,
                     timeline=True, load=1.5, duration=2.0, models=",".join(names))
    block = r.summary["truth"]
    assert block["multi_co_rate_changes"] > 0  # batches did run beside 2+ co-runners
    assert sum(block["overlap_s"].values()) > block["compute_s"]  # co-runner-seconds
    compute = [e for e in r.timeline.events if e[1].startswith("slot ")]
    assert len(compute) == block["batches_computed"]  # fifo: no preemption
    starts = np.array([e[3] for e in compute])
    ends = np.array([e[4] for e in compute])
    keys = [(names.index(lab.split(" x")[0]), int(lab.split(" x")[1]))
            for _, _, lab, _, _, _ in compute]
    origin = ComputeTruth(gappy_bundle, names, 8, np.random.default_rng(0))._origin
    everyone = np.ones(len(compute), dtype=bool)
    beside = off = 0.0
    for i, (m, size) in enumerate(keys):
        beside += _beside_s(starts, ends, i, everyone)
        extrapolated = np.array([origin(m, size, names[cm], cs) > 0 for cm, cs in keys])
        off += _beside_s(starts, ends, i, extrapolated)
    total = float(np.sum(ends - starts))
    assert block["compute_s"] == pytest.approx(total, rel=1e-12)
    assert 0.0 < block["extrapolated_share"] <= block["co_located_share"] <= 1.0
    assert block["co_located_share"] == pytest.approx(beside / total, rel=1e-9)
    assert block["extrapolated_share"] == pytest.approx(off / total, rel=1e-9)
    line = extrapolation_warning(block)
    assert line is not None and "(counted per co-runner: " in line
    assert line.startswith(f"{block['extrapolated_share']:.0%} of the simulated")
