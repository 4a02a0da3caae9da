"""Sweeps: point keys, resumable runs, failures recorded, same summaries on every executor."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from strait_sim.errors import UserError
from strait_sim.sweep import executors
from strait_sim.sweep.executors import run_points, without_timing
from strait_sim.sweep.points import point_key, profile_hash, run_point
from strait_sim.sweep.spec import resolve_spec
from strait_sim.sweep.table import results_frame


def tiny_spec(policy: str = "fifo", seed: int = 0, rate: float = 300.0, **extra) -> dict:
    return resolve_spec({"policy": policy, "profile": "synthetic-tiny", "rate": rate,
                         "duration": 1.0, "seed": seed, **extra})


def tiny_grid() -> list[dict]:
    return [tiny_spec(p, s, r) for p in ("fifo", "priority") for r in (200.0, 600.0)
            for s in (0, 1)][:5]


def test_spec_is_fully_resolved_and_json_able():
    spec = tiny_spec()
    assert set(spec) == {"policy", "policy_params", "profile", "workload", "gpus", "slots",
                         "max_batch", "seed", "interference", "pcie"}
    from strait_sim.cli.workload_options import WORKLOAD_OPTIONS

    assert set(spec["workload"]) == {p.name for p in WORKLOAD_OPTIONS}
    assert spec["workload"]["rate"] == 300.0 and spec["workload"]["duration"] == 1.0
    assert json.loads(json.dumps(spec)) == spec
    with pytest.raises(UserError, match="unknown parameter 'bogus'"):
        resolve_spec({"policy": "fifo", "bogus": 1})
    with pytest.raises(UserError, match="slots: expected int"):
        resolve_spec({"policy": "fifo", "slots": "two"})


def test_point_key_tracks_what_changes_results():
    spec = tiny_spec()
    h = profile_hash("synthetic-tiny")
    key = point_key(spec, h, "0.1.0")
    assert len(key) == 20 and key == point_key(json.loads(json.dumps(spec)), h, "0.1.0")
    reordered = dict(reversed(list(spec.items())))
    assert point_key(reordered, h, "0.1.0") == key
    assert point_key(spec, "0" * 64, "0.1.0") != key  # profile content
    assert point_key(spec, h, "0.2.0") != key  # package version
    assert point_key(tiny_spec(seed=1), h, "0.1.0") != key
    assert point_key(tiny_spec(hp_fraction=0.5), h, "0.1.0") != key
    # the profile's label is not part of the key: its content is
    assert point_key(dict(spec, profile="/elsewhere/synthetic-tiny"), h, "0.1.0") == key


def test_run_point_matches_a_direct_run(tmp_path):
    spec = tiny_spec("edf", seed=3)
    summary = run_point(spec, tmp_path / "pt")
    assert summary["policy"] == "edf" and summary["seed"] == 3
    assert summary["requests"] > 100
    on_disk = json.loads((tmp_path / "pt" / "summary.json").read_text())
    assert without_timing(on_disk) == without_timing(summary)
    assert json.loads((tmp_path / "pt" / "spec.json").read_text()) == spec
    assert len(pd.read_parquet(tmp_path / "pt" / "requests.parquet")) == summary["requests"]


def test_local_pool_and_dask_give_identical_summaries(tmp_path):
    pytest.importorskip("dask.distributed")
    specs = tiny_grid()
    inproc = run_points(specs, workers=1, progress=False)
    pool = run_points(specs, workers=2, out_dir=tmp_path / "pool", progress=False)
    dask = run_points(specs, workers=2, executor="dask", out_dir=tmp_path / "dask",
                      progress=False)
    for a, b, c in zip(inproc, pool, dask, strict=True):
        assert a.ok and b.ok and c.ok, (a.error, b.error, c.error)
        assert a.key == b.key == c.key
        assert without_timing(a.summary) == without_timing(b.summary) \
            == without_timing(c.summary)
        assert b.folder == tmp_path / "pool" / "points" / b.key
        assert (c.folder / "requests.parquet").is_file()
    # not all points are alike: the grid really varies the results
    rates = {o.summary["overall"]["violation_rate"] for o in pool}
    assert len(rates) > 1


def test_interrupted_sweep_resumes_only_missing_points(tmp_path, monkeypatch):
    specs = tiny_grid()
    real = executors.execute_point
    calls = []

    def interrupted(task):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(task["key"])
        return real(task)

    monkeypatch.setattr(executors, "execute_point", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_points(specs, out_dir=tmp_path, progress=False)
    done = sorted(p.name for p in (tmp_path / "points").iterdir())
    assert done == sorted(calls) and len(done) == 3  # whole folders only, no temp leftovers
    stamps = {k: (tmp_path / "points" / k / "summary.json").stat().st_mtime_ns for k in done}

    calls.clear()
    monkeypatch.setattr(executors, "execute_point", lambda task: (calls.append(task["key"]),
                                                                  real(task))[1])
    outcomes = run_points(specs, out_dir=tmp_path, progress=False)
    assert all(o.ok for o in outcomes)
    assert sorted(o.key for o in outcomes if o.skipped) == done
    assert sorted(calls) == sorted(o.key for o in outcomes if not o.skipped)
    assert len(calls) == len(specs) - 3
    for k, stamp in stamps.items():  # finished points were not rewritten
        assert (tmp_path / "points" / k / "summary.json").stat().st_mtime_ns == stamp
    fresh = run_points(specs, progress=False)
    for a, b in zip(outcomes, fresh, strict=True):
        assert without_timing(a.summary) == without_timing(b.summary)

    calls.clear()
    again = run_points(specs, out_dir=tmp_path, progress=False)
    assert calls == [] and all(o.skipped for o in again)
    forced = run_points(specs[:2], out_dir=tmp_path, force=True, progress=False)
    assert len(calls) == 2 and not any(o.skipped for o in forced)


def test_failing_point_is_recorded_and_the_rest_complete(tmp_path):
    specs = tiny_grid()[:3]
    bad = dict(specs[1], policy_params={"no_such_param": 1})
    outcomes = run_points([specs[0], bad, specs[2]], out_dir=tmp_path, progress=False)
    assert [o.ok for o in outcomes] == [True, False, True]
    failed = outcomes[1]
    assert failed.summary is None and failed.error.startswith("policy 'fifo'")
    record = json.loads((tmp_path / "points" / f"{failed.key}.error.json").read_text())
    assert record["spec"] == bad and record["error"] == failed.error
    assert record["error_type"] == "UserError"
    assert not (tmp_path / "points" / failed.key).exists()
    df = results_frame(outcomes)
    assert set(df.loc[df["key"] == failed.key, "status"]) == {"failed"}
    assert df.loc[df["key"] == failed.key, "violation_rate"].isna().all()
    assert (df.loc[df["key"] != failed.key, "status"] == "ok").all()
    # a rerun retries the failure (not the done points); once it succeeds its error goes
    rerun = run_points([specs[0], bad, specs[2]], out_dir=tmp_path, progress=False)
    assert [o.skipped for o in rerun] == [True, False, True]


def test_results_table_is_tidy(tmp_path):
    outcomes = run_points(tiny_grid()[:2], progress=False)
    df = results_frame(outcomes)
    assert len(df) == 2 * 3
    assert set(df["class"]) == {"high", "low", "overall"}
    for col in ("policy", "rate", "hp_fraction", "seed", "slots", "violation_rate", "p99_ms",
                "goodput_rps", "wall_s"):
        assert col in df.columns
    row = df[(df["key"] == outcomes[0].key) & (df["class"] == "high")].iloc[0]
    assert row["violation_rate"] == outcomes[0].summary["by_class"]["high"]["violation_rate"]


def test_bad_executor_arguments():
    with pytest.raises(UserError, match="unknown executor"):
        run_points([tiny_spec()], executor="ray", progress=False)
    with pytest.raises(UserError, match="--workers"):
        run_points([tiny_spec()], workers=0, progress=False)
    with pytest.raises(UserError, match="--scheduler needs --executor dask"):
        run_points([tiny_spec()], scheduler="tcp://x:1", progress=False)


def test_missing_dask_is_one_line(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.startswith("dask"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    with pytest.raises(UserError, match=r"strait-sim\[dask\]"):
        run_points([tiny_spec()], executor="dask", progress=False)


def test_identical_specs_run_once(tmp_path):
    spec = tiny_spec()
    outcomes = run_points([spec, dict(spec)], out_dir=tmp_path, progress=False)
    assert outcomes[0].key == outcomes[1].key and outcomes[0] is outcomes[1]
    assert len(list((tmp_path / "points").iterdir())) == 1


def test_unreachable_scheduler_is_a_user_error(monkeypatch):
    pytest.importorskip("dask.distributed")
    monkeypatch.setattr(executors, "DASK_CONNECT_TIMEOUT", "1s")
    with pytest.raises(UserError, match="cannot reach the Dask scheduler"):
        run_points([tiny_spec()], executor="dask", scheduler="tcp://127.0.0.1:9",
                   progress=False)


def test_profile_path_is_made_absolute(synthetic_bundle_path, monkeypatch):
    monkeypatch.chdir(Path(synthetic_bundle_path).parent)
    spec = resolve_spec({"policy": "fifo", "profile": "./synthetic-tiny", "rate": 100.0})
    assert Path(spec["profile"]).is_absolute()


def test_transient_failure_is_retried_and_its_error_file_removed(tmp_path, monkeypatch):
    spec = tiny_spec()

    def broken(spec, **kwargs):
        raise RuntimeError("disk hiccup")

    monkeypatch.setattr(executors, "simulate_point", broken)
    [first] = run_points([spec], out_dir=tmp_path, progress=False)
    assert first.error == "RuntimeError: disk hiccup"
    error_file = tmp_path / "points" / f"{first.key}.error.json"
    assert "Traceback" in json.loads(error_file.read_text())["traceback"]
    monkeypatch.undo()
    [second] = run_points([spec], out_dir=tmp_path, progress=False)
    assert second.ok and not second.skipped and not error_file.exists()


def test_point_key_follows_the_content_of_input_files(tmp_path, monkeypatch):
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,model\n0.1,synth_small\n")
    monkeypatch.chdir(tmp_path)
    spec = resolve_spec({"policy": "fifo", "profile": "synthetic-tiny",
                         "workload": "trace", "trace": "trace.csv"})
    assert spec["workload"]["trace"] == str(trace)  # made absolute for workers elsewhere
    h = profile_hash("synthetic-tiny")
    before = point_key(spec, h, "v")
    trace.write_text("arrival_s,model\n0.2,synth_small\n")
    import os

    os.utime(trace, ns=(1, 1))  # a new mtime, whatever the clock's resolution
    assert point_key(spec, h, "v") != before


def test_no_profile_means_the_default_profile():
    from strait_sim.profile_registry import default_profile_name

    assert resolve_spec({"policy": "fifo", "profile": None})["profile"] == \
        default_profile_name()
    assert resolve_spec({"policy": "fifo"})["profile"] == default_profile_name()
