"""``strait-sim compare``: identical workloads, tables with confidence intervals, plots."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from strait_sim.cli.compare_report import mean_ci, reference_table, runs_frame


def test_mean_ci_is_the_t_interval():
    mean, half = mean_ci([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2)
    # t(0.975, 2) = 4.302653; sd = 0.1; n = 3
    assert half == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)
    assert mean_ci([0.5]) == (0.5, None)
    assert mean_ci([None]) == (None, None)


def _summary(hp: float, lp: float, jain: float) -> dict:
    cls = {"violation_rate": 0.0, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "dropped": 0,
           "rejected": 0, "count": 10}
    return {"by_class": {"high": {**cls, "violation_rate": hp},
                         "low": {**cls, "violation_rate": lp}},
            "overall": {"goodput_rps": 1.0}, "gpu_busy_fraction": 0.5, "jain_fairness": jain,
            "prediction": {}, "engine": {"preemptions": 0, "lost_work_s": 0.0}}


def test_reference_differences_are_paired_in_points():
    recs = [(1.0, "strait", 0, _summary(0.01, 0.10, 0.95)),
            (1.0, "strait", 1, _summary(0.03, 0.20, 0.90)),
            (1.0, "reef", 0, _summary(0.02, 0.05, 0.97)),
            (1.0, "reef", 1, _summary(0.06, 0.10, 0.93))]
    ref = reference_table(runs_frame(recs), "strait", ["strait", "reef"])
    (row,) = ref.to_dict("records")
    assert row["hp_reduction_pp"] == pytest.approx(2.0)  # (1 + 3) / 2 points
    assert row["lp_cost_pp"] == pytest.approx(7.5)  # (5 + 10) / 2 points
    assert row["jain_diff"] == pytest.approx(-0.025)
    assert row["seeds"] == 2 and row["hp_reduction_pp_ci"] is not None


def test_compare_writes_tables_plots_and_runs(tmp_path, capsys, synthetic_bundle_path):
    from strait_sim.cli.app import main

    out = tmp_path / "cmp"
    code = main(["compare", "--policies", "strait,priority", "--profile",
                 str(synthetic_bundle_path), "--loads", "0.8,1.2", "--seeds", "2",
                 "--duration", "0.2", "--out", str(out), "-q"])
    text = capsys.readouterr().out
    assert code == 0
    assert "strait against each policy" not in text and f"under {out}" in text  # -q
    assert "positive means the reference misses fewer" in (out / "comparison.md").read_text()
    for name in ("comparison.csv", "comparison.md", "reference.csv", "runs.csv",
                 "violation_vs_load.png", "latency_cdf_load0.8.png",
                 "latency_cdf_load1.2.png"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "comparison.csv")
    assert len(table) == 4 and set(table["policy"]) == {"strait", "priority"}
    assert table["hp_violation_ci"].notna().all() and (table["seeds"] == 2).all()
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 8
    # identical workloads: the same seed and load give the same arrivals to each policy
    arrivals = {}
    for row in runs.itertuples():
        df = pd.read_parquet(f"{row.folder}/requests.parquet")
        arrivals.setdefault((row.load, row.seed), []).append(df["arrival_s"].to_numpy())
    for a, b in arrivals.values():
        assert len(a) == len(b) and (a == b).all()
    assert len({len(v[0]) for v in arrivals.values()}) > 1  # seeds differ
    # a second run reuses the points (nothing recomputed) and gives the same table
    assert main(["compare", "--policies", "strait,priority", "--profile",
                 str(synthetic_bundle_path), "--loads", "0.8,1.2", "--seeds", "2",
                 "--duration", "0.2", "--out", str(out), "-q"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "comparison.csv"), table)


def test_compare_loads_conflict_with_rate(capsys):
    from strait_sim.cli.app import main

    assert main(["compare", "--policies", "fifo", "--loads", "0.5", "--rate", "10"]) == 2
    assert "--loads" in capsys.readouterr().err
