"""``strait-sim validate``: the statistics, and the command end to end on the CPU backend."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import cuda_available

from strait_sim.cli.app import main
from strait_sim.live.report import compare, ks_test, tost_welch
from strait_sim.results import RunResult, load_results
from strait_sim.synthetic import SyntheticSpec, make_synthetic_bundle


@pytest.fixture(scope="module")
def tiny_bundle_path(tmp_path_factory):
    spec = SyntheticSpec(models={"tiny_mlp": (0.15, 0.03), "tiny_cnn": (8.0, 0.6)},
                         io_bytes={"tiny_mlp": (1024, 40), "tiny_cnn": (12288, 40)},
                         reps=4, offsets_frac=(0.0,), batches=(1, 2, 4))
    return make_synthetic_bundle(tmp_path_factory.mktemp("val") / "bundle", spec,
                                 name="synthetic-live")


def test_tost_accepts_equal_means_and_rejects_shifted_ones():
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 1, 2000), rng.normal(10, 1, 2000)
    same = tost_welch(a, b, 0.10, 0.05)
    assert same["equivalent"] and same["pvalue"] < 1e-6
    assert same["ci90_diff_ms"][0] < 0 < same["ci90_diff_ms"][1]
    off = tost_welch(a * 1.3, b, 0.10, 0.05)
    assert off["equivalent"] is False and off["pvalue"] > 0.5
    few = tost_welch(a[:1], b, 0.10, 0.05)
    assert few["equivalent"] is None
    # a difference just inside the margin, with little noise, is equivalent; outside is not
    assert tost_welch(b + 0.5, b, 0.10, 0.05)["equivalent"]
    assert not tost_welch(b + 1.5, b, 0.10, 0.05)["equivalent"]


def test_ks_separates_different_distributions():
    rng = np.random.default_rng(2)
    assert ks_test(rng.exponential(1, 500), rng.exponential(1, 500))["pvalue"] > 0.01
    assert ks_test(rng.exponential(1, 500), rng.exponential(2, 500))["pvalue"] < 1e-6


def _run(lat_ms, prio, violation_every=0):
    n = len(lat_ms)
    status = ["late" if violation_every and i % violation_every == 0 else "on_time"
              for i in range(n)]
    df = pd.DataFrame({"priority": pd.Categorical(prio, categories=["high", "low"]),
                       "status": pd.Categorical(status, categories=["pending", "on_time",
                                                                    "late", "dropped",
                                                                    "rejected", "failed"]),
                       "arrival_s": np.zeros(n), "start_s": np.zeros(n),
                       "finish_s": np.asarray(lat_ms) / 1e3,
                       "predicted_ms": np.asarray(lat_ms) * 1.1})
    return RunResult(df, {})


def test_compare_reports_relative_differences_and_percentage_points():
    prio = ["high", "low"] * 50
    live = _run(np.full(100, 10.0), prio, violation_every=10)
    sim = _run(np.full(100, 12.0), prio)
    c = compare(live, sim)
    assert c["all"]["latency"]["p50"]["rel_diff"] == pytest.approx(0.2)
    assert c["all"]["violation"]["diff_pp"] == pytest.approx(-10.0)
    assert c["high"]["violation"]["diff_pp"] == pytest.approx(-20.0)
    assert c["low"]["violation"]["diff_pp"] == pytest.approx(0.0)
    assert c["all"]["prediction"]["live"]["mape"] == pytest.approx(0.1)


def test_validate_live_cpu_writes_report_and_rerenders(tiny_bundle_path, tmp_path, capsys):
    out = tmp_path / "val"
    args = ["validate", "--live", "--cpu", "--policy", "fifo", "--profile",
            str(tiny_bundle_path), "--rate", "120", "--duration", "1.2", "--max-batch", "4",
            "--out", str(out), "--force", "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    for name in ("report.md", "report.json", "cdf_high.png", "cdf_low.png", "cdf_all.png"):
        assert (out / name).is_file(), name
    assert (out / "cdf_high.png").read_bytes()[:4] == b"\x89PNG"
    live, sim = load_results(out / "live"), load_results(out / "sim")
    assert live.summary["mode"] == "live" and sim.summary["mode"] == "sim"
    assert len(live.requests) == len(sim.requests)  # the same workload, the same seed
    np.testing.assert_array_equal(live.requests["arrival_s"], sim.requests["arrival_s"])
    report = json.loads((out / "report.json").read_text())
    assert report["command"].startswith("strait-sim validate --live --cpu")
    for cls in ("high", "low", "all"):
        c = report["classes"][cls]
        assert set(c["latency"]) == {"mean", "p50", "p90", "p95", "p99"}
        assert c["ks"]["n_live"] > 0 and c["ks"]["pvalue"] is not None
        assert "equivalent" in c["tost"] and c["tost"]["margin"] == 0.10
        assert c["violation"]["diff_pp"] is not None
    assert any("synthetic" in w for w in report["setup"]["warnings"])
    md = (out / "report.md").read_text()
    assert "| all | p99 |" in md and "KS" in md and "cdf_low.png" in md

    (out / "report.md").unlink()
    assert main(["validate", "--report", str(out), "--quiet"]) == 0
    again = json.loads((out / "report.json").read_text())
    assert (out / "report.md").is_file() and "rendered" in again
    assert again["classes"]["all"]["ks"] == report["classes"]["all"]["ks"]
    assert again["command"] == report["command"]


def test_validate_user_errors(tiny_bundle_path, synthetic_bundle_path, tmp_path, capsys):
    assert main(["validate", "--rate", "10"]) == 2
    assert "--live" in capsys.readouterr().err
    assert main(["validate", "--live", "--rate", "10", "--out", str(tmp_path / "a")]) == 2
    assert "exactly one of --gpu N or --cpu" in capsys.readouterr().err
    assert main(["validate", "--live", "--cpu", "--rate", "10", "--profile",
                 str(tiny_bundle_path)]) == 2
    assert "--out" in capsys.readouterr().err
    if not cuda_available():
        assert main(["validate", "--live", "--gpu", "0", "--rate", "10", "--out",
                     str(tmp_path / "g")]) == 2
        assert "GPU 0 requested" in capsys.readouterr().err
    assert main(["validate", "--report", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["validate", "--live", "--cpu", "--policy", "no-such-policy", "--profile",
                 str(tiny_bundle_path), "--rate", "10", "--out", str(tmp_path / "b"),
                 "--force"]) == 2
    assert "unknown policy" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_report_renders_with_an_empty_class():
    from strait_sim.live.report import build_report, render_markdown

    live = _run(np.linspace(5, 15, 50), ["low"] * 50)
    sim = _run(np.linspace(5, 16, 50), ["low"] * 50)
    for r in (live, sim):
        r.requests["model"] = pd.Categorical(["m"] * 50)
        r.requests["batch_size"] = 1
        r.requests["compute_ms"] = 1.0
    live.summary.update({"mode": "live", "seed": 0, "workload": {}})
    sim.summary.update({"mode": "sim", "seed": 0, "workload": {}})
    report = build_report(live, sim, command="x")
    high = report["classes"]["high"]
    assert high["ks"]["pvalue"] is None and high["tost"]["equivalent"] is None
    assert high["violation"]["diff_pp"] is None
    md = render_markdown(report)
    assert "| high | mean | - | - | - |" in md
