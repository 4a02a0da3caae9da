"""Reports that show the policy's own prediction accuracy (validate, validation studies)
and compare's SLO view (drops counted as misses)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from strait_sim.cli.compare_report import (
    comparison_table,
    runs_frame,
    slo_markdown,
    slo_row,
)
from strait_sim.live.prediction import cell_block, prediction_accuracy, render_study_block


def _requests(pred_ms, obs_ms, status=None) -> pd.DataFrame:
    n = len(obs_ms)
    return pd.DataFrame({
        "status": pd.Categorical(status or ["on_time"] * n,
                                 categories=["on_time", "late", "dropped"]),
        "start_s": np.zeros(n), "finish_s": np.asarray(obs_ms, dtype=float) / 1e3,
        "predicted_ms": np.asarray(pred_ms, dtype=float)})


def test_prediction_accuracy_states_bias_as_a_share_of_the_mean_service():
    df = _requests([90.0, 330.0, np.nan, 5.0], [100.0, 300.0, 50.0, 10.0],
                   ["on_time", "late", "on_time", "dropped"])
    p = prediction_accuracy(df)
    # served with a prediction: (90 vs 100) and (330 vs 300); the dropped one is not served
    assert p["predictions"] == 2
    assert p["mape"] == pytest.approx((0.1 + 0.1) / 2)
    assert p["mean_bias_ms"] == pytest.approx(10.0)
    assert p["mean_service_ms"] == pytest.approx(200.0)
    assert p["bias_share"] == pytest.approx(0.05)
    assert prediction_accuracy(_requests([np.nan], [10.0])) == {"predictions": 0}


def test_study_block_pools_repeats_live_beside_sim():
    live = [_requests([110.0], [100.0]), _requests([90.0, 90.0], [100.0, 100.0])]
    sim = [_requests([100.0], [100.0]), _requests([100.0], [125.0])]
    block = cell_block(list(zip(live, sim, strict=True)))
    assert block is not None
    assert block["live"]["predictions"] == 3
    assert block["live"]["mape"] == pytest.approx(0.1)
    assert block["live"]["per_repeat_mape"] == pytest.approx([0.1, 0.1])
    assert block["sim"]["bias_share"] == pytest.approx(-12.5 / 112.5)
    md = "\n".join(render_study_block({"cells": {"strait": {"1.1": {"prediction": block}}}}))
    assert "| strait | 1.1 | 3 | 10.0% | -3.3% | 2 | 10.0% | -11.1% |" in md
    nothing = [(_requests([np.nan], [1.0]), _requests([np.nan], [1.0]))]
    assert cell_block(nothing) is None
    assert render_study_block({"cells": {"fifo": {"1": {}}}}) == []


def _summary(hp_p99: float | None, slo: bool = True) -> dict:
    cls = {"violation_rate": 0.1, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "dropped": 0,
           "rejected": 0, "count": 10}
    out = {"by_class": {"high": dict(cls), "low": dict(cls)},
           "overall": {"goodput_rps": 1.0}, "gpu_busy_fraction": 0.5, "jain_fairness": 0.9,
           "prediction": {}, "engine": {"preemptions": 0, "lost_work_s": 0.0}}
    if slo:
        block = {"count": 10, "served": 9, "slo_attainment": 0.9, "p50_ms": 1.0,
                 "p90_ms": 2.0, "p95_ms": 2.5, "p99_ms": 3.0}
        out["slo"] = {"by_class": {"high": {**block, "p99_ms": hp_p99}, "low": block},
                      "jain_model_class": 0.8, "goodput_arrival_rps": 2.0}
    return out


def test_compare_slo_view_counts_unbounded_seeds():
    row = slo_row(_summary(None)["slo"])
    assert math.isinf(row["hp_slo_p99_ms"]) and row["lp_slo_p99_ms"] == 3.0
    assert row["hp_attainment"] == 0.9 and row["jain_model_class"] == 0.8
    assert all(v is None for v in slo_row(None).values())  # streamed runs: no slo block
    recs = [(1.0, "strait", 0, _summary(None)), (1.0, "strait", 1, _summary(4.0)),
            (1.0, "fifo", 0, _summary(5.0)), (1.0, "fifo", 1, _summary(7.0))]
    table = comparison_table(runs_frame(recs), ["strait", "fifo"])
    strait, fifo = table.to_dict("records")
    assert math.isinf(strait["hp_slo_p99_ms"]) and strait["hp_slo_p99_ms_unbounded"] == 1
    assert fifo["hp_slo_p99_ms"] == pytest.approx(6.0)
    md = slo_markdown(table)
    assert "| 1.00 | strait | 2 | 2.5 | unbounded (1/2) | 2.5 | 3.0 | 90.0 | 90.0 |" in md
    assert "| 1.00 | fifo | 2 | 2.5 | 6.0 |" in md
    old = comparison_table(runs_frame([(1.0, "fifo", 0, _summary(1.0, slo=False))]), ["fifo"])
    assert slo_markdown(old) == ""


def test_compare_and_validate_show_the_new_blocks(tmp_path, capsys):
    """End to end on the synthetic fixture: compare's Markdown has the SLO view; a study
    of strait reports its prediction accuracy, and ``validate --report`` re-summarises a
    stored study without any device."""
    from strait_sim import api
    from strait_sim.cli.app import main
    from strait_sim.engine.simulator import SimConfig
    from strait_sim.experiment import run_simulation
    from strait_sim.live.report import write_validation
    from strait_sim.live.study import run_study

    out = tmp_path / "cmp"
    assert main(["compare", "--policies", "strait,fifo", "--profile", "synthetic-tiny",
                 "--seeds", "1", "--duration", "0.5", "--out", str(out), "-q"]) == 0
    md = (out / "comparison.md").read_text()
    assert "SLO view" in md and "Jain (model, class)" in md
    from strait_sim.html_report import render_html

    assert 'id="slo"' in render_html(out)

    bundle = api.load_profile("synthetic-tiny")

    def cell(*, policy, out, seed, load):
        wl = api.describe_workload(bundle, load=load, duration=1.0, max_batch=4)
        live = run_simulation(bundle, wl, api.make_policy(policy),
                              SimConfig(gpus=1, slots=2, max_batch=4, seed=seed))
        sim = run_simulation(bundle, wl, api.make_policy(policy),
                             SimConfig(gpus=1, slots=2, max_batch=4, seed=seed + 100))
        write_validation(out, live, sim, command="test")

    study_dir = tmp_path / "study"
    study = run_study(policies=["strait", "fifo"], loads=[1.0], repeats=1, seed=0,
                      out=study_dir, run_cell=cell)
    assert study["cells"]["strait"]["1"]["prediction"]["sim"]["predictions"] > 0
    assert "prediction" not in study["cells"]["fifo"]["1"]
    text = (study_dir / "study.md").read_text()
    assert "Policy prediction accuracy" in text and "| strait | 1 |" in text
    report = (study_dir / "strait" / "load-1" / "rep-0" / "report.md").read_text()
    assert "sim bias / mean service" in report
    (study_dir / "study.md").unlink()
    capsys.readouterr()
    assert main(["validate", "--report", str(study_dir)]) == 0
    assert "Policy prediction accuracy" in capsys.readouterr().out
    assert (study_dir / "study.md").read_text() == text
