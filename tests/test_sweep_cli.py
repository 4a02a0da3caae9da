"""The experiment file and the `strait-sim sweep` commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from strait_sim.cli.app import main
from strait_sim.errors import UserError
from strait_sim.output_folder import open_resumable_folder
from strait_sim.policies.fifo import FifoPolicy
from strait_sim.sweep.experiment_file import load_experiment

GOOD = """
[experiment]
name = "tiny"
out = "out"
profile = "synthetic-tiny"
metrics = ["violation_rate", "p99_ms"]
keep_requests = false

[grid]
policy = ["fifo", "priority"]
rate = [200, 500]
seed = [0, 1]

[fixed]
duration = 1.0
slots = 2
"""


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_experiment_expands_the_grid(tmp_path):
    exp = load_experiment(write(tmp_path, GOOD))
    assert exp.name == "tiny" and exp.out == tmp_path / "out"
    assert exp.grid_keys == ["policy", "rate", "seed"]
    assert len(exp.specs) == 8 and exp.keep_requests is False
    assert {(s["policy"], s["workload"]["rate"], s["seed"]) for s in exp.specs} == {
        (p, r, s) for p in ("fifo", "priority") for r in (200.0, 500.0) for s in (0, 1)}
    assert all(s["workload"]["duration"] == 1.0 and s["slots"] == 2 for s in exp.specs)


class ParamFifo(FifoPolicy):
    """fifo with a (result-neutral) parameter, to test policy_params lists."""

    name = "pfifo"

    def __init__(self, label: int = 0) -> None:
        if label < 0:
            raise ValueError("label must be >= 0")
        self.label = label

    def params(self) -> dict:
        return {"label": self.label}


def test_policy_params_and_system_lists(tmp_path, monkeypatch):
    from strait_sim.policies import registry

    monkeypatch.setitem(registry.BUILTIN, "pfifo", f"{__name__}:ParamFifo")
    text = GOOD.replace('policy = ["fifo", "priority"]',
                        'policy = "pfifo"\nslots = [1, 2]\npolicy_params.label = [1, 2]')
    text = text.replace("slots = 2\n", "")
    exp = load_experiment(write(tmp_path, text))
    assert exp.grid_keys == ["policy", "slots", "policy_params.label", "rate", "seed"]
    assert len(exp.specs) == 16
    assert {(s["slots"], s["policy_params"]["label"]) for s in exp.specs} == {
        (1, 1), (1, 2), (2, 1), (2, 2)}
    with pytest.raises(UserError, match=r"\[grid\] policy_params.label: policy 'pfifo'"):
        load_experiment(write(tmp_path, text.replace("label = [1, 2]", "label = [1, -2]")))
    from strait_sim.sweep.runner import run_experiment

    exp.specs = [s for s in exp.specs if s["seed"] == 0 and s["workload"]["rate"] == 200.0]
    result = run_experiment(exp, progress=False)
    assert all(o.ok for o in result.outcomes)
    assert {o.summary["policy_params"]["label"] for o in result.outcomes} == {1, 2}
    df = pd.read_parquet(result.table)
    assert sorted(df["policy_params.label"].unique()) == [1, 2]
    assert sorted(df["slots"].unique()) == [1, 2]


@pytest.mark.parametrize(("change", "message"), [
    (("[grid]", "[gird]"), "unknown section [gird]"),
    (('name = "tiny"', 'nmae = "tiny"'), "[experiment] unknown key 'nmae'"),
    (("rate = [200, 500]", "rat = [200, 500]"), "[grid] unknown key 'rat'"),
    (("rate = [200, 500]", 'rate = [200, "fast"]'), "rate: expected float"),
    (("slots = 2", 'slots = "two"'), "slots: expected int"),
    (("slots = 2", "slots = [1, 2]"), "[fixed] slots is a list"),
    (('"priority"]', '"nosuch"]'), "unknown policy 'nosuch'"),
    (('profile = "synthetic-tiny"', 'profile = "no-such-profile"'), "no-such-profile"),
    (('"p99_ms"]', '"p98_ms"]'), "unknown metric 'p98_ms'"),
    (("seed = [0, 1]", "seed = []"), "[grid] seed must be a non-empty list"),
    (("seed = [0, 1]", "seed = [1, 1]"), "[grid] seed lists 1 twice"),
    (("duration = 1.0", "seed = 3"), "'seed' is in both [grid] and [fixed]"),
    (("duration = 1.0", "policy_params.bogus = 1"), "policy_params.bogus"),
    (("slots = 2", "slots = 0"), "--slots must be at least 1"),
    (("duration = 1.0", "duration = -1.0"), "workload"),
    (('name = "tiny"', 'name = "tiny'), "not valid TOML"),
])
def test_bad_experiment_files_fail_with_one_line(tmp_path, change, message):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(UserError) as info:
        load_experiment(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text


@pytest.mark.parametrize(("changes", "message"), [
    ([("rate = [200, 500]\n", ""), ("slots = 2", "slots = 2\nload = nan")],
     "workload: --load: must be a finite number, got nan"),
    ([("duration = 1.0", "duration = inf")], "--duration: must be a finite number, got inf"),
    ([("rate = [200, 500]", "load = [0.5, nan]")], "--load: must be a finite number, got nan"),
    ([('"fifo", "priority"', '"reef"'),
      ("slots = 2", "slots = 2\npolicy_params.pad_slowdown = inf")],
     "[fixed] policy_params.pad_slowdown: policy 'reef': pad_slowdown must be a finite"),
])
def test_non_finite_values_fail_with_one_line(tmp_path, capsys, changes, message):
    """nan and inf were a JSON traceback (the checks' de-duplication keys refused them)."""
    text = GOOD
    for change in changes:
        text = text.replace(*change)
    path = write(tmp_path, text)
    assert main(["sweep", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: ") and message in err and "\n" not in err, err
    assert not (tmp_path / "out").exists()


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="experiment file not found"):
        load_experiment(tmp_path / "nope.toml")


def test_sweep_file_then_report(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert main(["sweep", str(path), "--workers", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "8 points: 8 run, 0 already done, 0 failed" in out
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert len(df) == 8 * 3 and (df["status"] == "ok").all()
    points = tmp_path / "out" / "points"
    assert len(list(points.iterdir())) == 8
    assert not any((p / "requests.parquet").exists() for p in points.iterdir())  # keep off
    manifest = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert manifest["grid_keys"] == ["policy", "rate", "seed"] and manifest["ok"] == 8
    assert (tmp_path / "out" / "experiment.toml").read_text() == GOOD

    assert main(["sweep", "run", str(path), "-q"]) == 0  # long form; all reused
    assert "0 run, 8 already done" in capsys.readouterr().out

    assert main(["sweep", "report", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "violated %" in out and "–" in out  # percentages, an interval
    report = tmp_path / "out" / "report"
    table = pd.read_csv(report / "summary.csv")
    assert len(table) == 2 * 2 * 3  # policy x rate x class; seeds averaged
    assert (table["seeds"] == 2).all()
    assert {"violation_rate_mean", "violation_rate_ci95", "p99_ms_mean"} <= set(table.columns)
    assert (report / "violation_rate_vs_rate.png").stat().st_size > 1000
    assert (report / "p99_ms_vs_rate.png").is_file()
    # the mean over seeds is the mean of the table's rows
    rows = df[(df["policy"] == "fifo") & (df["rate"] == 500.0) & (df["class"] == "high")]
    got = table[(table["policy"] == "fifo") & (table["rate"] == 500.0)
                & (table["class"] == "high")]["violation_rate_mean"].item()
    assert got == pytest.approx(rows["violation_rate"].mean())


def test_sweep_cli_user_errors(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("rate = [200, 500]", "rat = [200, 500]"))
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key 'rat'" in err
    assert not (tmp_path / "out").exists()
    assert main(["sweep", "report", str(tmp_path / "nothing")]) == 2
    assert "results.parquet: not found" in capsys.readouterr().err
    good = write(tmp_path, GOOD, "good.toml")
    assert main(["sweep", str(good), "--executor", "ray", "-q"]) == 2
    assert "unknown executor 'ray'" in capsys.readouterr().err


def test_load_and_slo_axes(tmp_path):
    text = GOOD.replace("rate = [200, 500]", "load = [0.3, 0.6]\nslo = [3, 10]")
    exp = load_experiment(write(tmp_path, text))
    assert len(exp.specs) == 16
    assert {s["workload"]["slo"] for s in exp.specs} == {"3", "10"}  # the flags' text
    assert {s["workload"]["load"] for s in exp.specs} == {0.3, 0.6}


def test_report_means_and_intervals_over_seeds():
    from scipy import stats

    from strait_sim.sweep.report import summarize_sweep

    rows = []
    for policy, base in (("fifo", 0.1), ("edf", 0.2)):
        for load in (0.5, 0.9):
            for seed, noise in enumerate((0.0, 0.02, 0.04)):
                for cls in ("high", "low", "overall"):
                    rows.append({"key": f"{policy}{load}{seed}", "status": "ok", "class": cls,
                                 "policy": policy, "load": load, "seed": seed,
                                 "violation_rate": base * load + noise, "p99_ms": 1.0})
    rows.append({"key": "bad", "status": "failed", "class": "high", "policy": "fifo",
                 "load": 0.5, "seed": 9, "violation_rate": None, "p99_ms": None})
    df = pd.DataFrame(rows)
    rep = summarize_sweep(df, {"metrics": ["violation_rate"],
                               "grid_keys": ["policy", "load", "seed"]})
    assert rep.x == "load" and rep.series == ["policy"] and rep.failed == 1
    row = rep.table[(rep.table["policy"] == "edf") & (rep.table["load"] == 0.9)
                    & (rep.table["class"] == "low")].iloc[0]
    vals = [0.18, 0.20, 0.22]
    assert row["seeds"] == 3
    assert row["violation_rate_mean"] == pytest.approx(0.2)
    half = stats.t.ppf(0.975, 2) * pd.Series(vals).std(ddof=1) / 3 ** 0.5
    assert row["violation_rate_ci95"] == pytest.approx(half)
    assert len(rep.table) == 2 * 2 * 3


def test_sweep_with_a_failing_point_exits_1_and_writes_the_rest(tmp_path, capsys,
                                                               monkeypatch):
    from strait_sim.sweep import executors

    real = executors.simulate_point

    def flaky(spec, **kwargs):
        if spec["policy"] == "priority" and spec["seed"] == 1:
            raise RuntimeError("boom")
        return real(spec, **kwargs)

    monkeypatch.setattr(executors, "simulate_point", flaky)
    path = write(tmp_path, GOOD.replace("rate = [200, 500]", "rate = [200]"))
    assert main(["sweep", str(path), "-q"]) == 1
    captured = capsys.readouterr()
    assert "4 points: 3 run, 0 already done, 1 failed" in captured.out
    assert "RuntimeError: boom" in captured.err
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert (df["status"] == "failed").sum() == 3 and (df["status"] == "ok").sum() == 9
    assert len(list((tmp_path / "out" / "points").glob("*.error.json"))) == 1


@pytest.mark.parametrize("metric", ["policy", "interference"])
def test_report_of_a_metric_that_is_not_numeric_says_so(tmp_path, capsys, metric):
    path = write(tmp_path, GOOD.replace("rate = [200, 500]", "rate = [200]")
                 .replace("seed = [0, 1]", "seed = [0]"))
    assert main(["sweep", str(path), "-q"]) == 0
    capsys.readouterr()
    assert main(["sweep", "report", str(tmp_path / "out"), "--metric", metric]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: metric '{metric}' is not numeric; numeric metrics: "
                          "violation_rate, p50_ms") and "\n" not in err, err
    assert "policy" not in err.partition("numeric metrics:")[2]
    assert not (tmp_path / "out" / "report").exists()


def test_report_of_a_sweep_where_every_point_failed_says_so(tmp_path, capsys, monkeypatch):
    from strait_sim.sweep import executors

    def boom(spec, **kwargs):
        raise RuntimeError(f"boom at seed {spec['seed']}")

    monkeypatch.setattr(executors, "simulate_point", boom)
    path = write(tmp_path, GOOD.replace("rate = [200, 500]", "rate = [200]"))
    assert main(["sweep", str(path), "-q"]) == 1
    capsys.readouterr()
    assert main(["sweep", "report", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: every point failed (4 of 4)") and "\n" not in err, err
    assert "the first error: RuntimeError: boom at seed " in err  # was: metric(s) not in ...
    assert not (tmp_path / "out" / "report").exists()


def test_sweep_help_and_option_order(tmp_path, capsys):
    assert main(["sweep"]) == 0
    assert "report" in capsys.readouterr().out
    assert main(["sweep", "--help"]) == 0
    capsys.readouterr()
    path = write(tmp_path, GOOD.replace("seed = [0, 1]", "seed = [0]")
                 .replace("rate = [200, 500]", "rate = [200]"))
    assert main(["sweep", "--quiet", "--out", str(tmp_path / "elsewhere"), str(path)]) == 0
    assert "2 points: 2 run" in capsys.readouterr().out
    assert (tmp_path / "elsewhere" / "results.parquet").is_file()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("address", "message"), [
    ("garbage", "needs a host and a port"),
    ("tcp://[::1", "Invalid IPv6 URL"),
    ("http://127.0.0.1:1", "unknown scheme 'http'"),
    ("tcp://127.0.0.1:0", r"port must be in 1\.\.65535"),
])
def test_bad_scheduler_address_is_one_line_before_the_folder(tmp_path, capsys, address,
                                                             message):
    path = write(tmp_path, GOOD)
    assert main(["sweep", str(path), "-q", "--executor", "dask",
                 "--scheduler", address]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --scheduler '{address}'") and "\n" not in err, err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_unreachable_scheduler_leaves_no_new_folder_but_keeps_an_old_one(tmp_path, capsys,
                                                                         monkeypatch):
    pytest.importorskip("dask.distributed")
    from strait_sim.sweep import executors

    monkeypatch.setattr(executors, "DASK_CONNECT_TIMEOUT", "1s")
    path = write(tmp_path, GOOD)
    args = ["sweep", str(path), "-q", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach the Dask scheduler") and "\n" not in err
    assert not (tmp_path / "out").exists()
    # A folder that was there before (an earlier, resumable sweep) is the user's: kept.
    (tmp_path / "out").mkdir()
    open_resumable_folder(tmp_path / "out", "sweep")
    assert main(args) == 2
    assert (tmp_path / "out" / ".strait-sim.json").is_file()


def test_a_policy_parameter_the_points_slots_cannot_honour_fails_with_one_line(tmp_path):
    """orion's hp_slots above a point's slots ran as hp_slots = slots, silently; the
    experiment is refused naming the parameter, before any point runs."""
    text = GOOD.replace('["fifo", "priority"]', '["orion"]').replace(
        "slots = 2", "slots = 2\npolicy_params.hp_slots = 3")
    path = write(tmp_path, text)
    with pytest.raises(UserError) as info:
        load_experiment(path)
    text = str(info.value)
    assert "[fixed] policy_params.hp_slots: policy 'orion': hp_slots=3 exceeds --slots 2" \
        in text and str(path) in text and "\n" not in text
