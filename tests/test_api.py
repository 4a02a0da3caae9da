"""The Python API (strait_sim.api): the README's Python gives the CLI's bytes, its
docstring examples run, and bad input is one UserError line."""

from __future__ import annotations

import doctest
import json
import re
from pathlib import Path

import pytest

import strait_sim
from strait_sim import api
from strait_sim.cli.app import main
from strait_sim.errors import UserError
from strait_sim.sweep.executors import without_timing

ROOT = Path(__file__).resolve().parents[1]


def readme_python_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_gives_the_cli_bytes(tmp_path, monkeypatch, capsys):
    code = readme_python_block()
    assert len([ln for ln in code.splitlines() if ln.strip()]) <= 5
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip()
    assert 0.0 <= float(printed) <= 1.0
    cli = ["run", "--policy", "strait", "--load", "0.9", "--duration", "60", "--seed", "1",
           "--out", str(tmp_path / "cli"), "--quiet"]
    assert main(cli) == 0
    py, sh = tmp_path / "runs" / "strait-py", tmp_path / "cli"
    assert (py / "requests.parquet").read_bytes() == (sh / "requests.parquet").read_bytes()
    assert without_timing(json.loads((py / "summary.json").read_text())) == \
        without_timing(json.loads((sh / "summary.json").read_text()))


def test_docstring_examples_run():
    for module in (strait_sim, api):
        failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert attempted > 0 and failed == 0, module.__name__


def test_top_level_exports_are_the_api():
    for name in ("simulate", "compare", "validate", "report", "load_profile",
                 "describe_workload", "make_policy"):
        assert getattr(strait_sim, name) is getattr(api, name)
    with pytest.raises(AttributeError):
        strait_sim.no_such_thing  # noqa: B018


def test_workload_keywords_take_python_values():
    as_text = api.describe_workload("synthetic-tiny", rate=30, duration=1,
                                    slo="high=3,low=10", models="synth_small,synth_large")
    as_python = api.describe_workload("synthetic-tiny", rate=30, duration=1,
                                      slo={"high": 3, "low": 10},
                                      models=["synth_small", "synth_large"])
    assert as_text.describe() == as_python.describe()


def test_objects_and_names_give_the_same_run():
    by_name = api.simulate("priority", "synthetic-tiny", rate=40, duration=1, seed=3)
    profile = api.load_profile("synthetic-tiny")
    wl = api.describe_workload(profile, rate=40, duration=1)
    by_object = api.simulate(api.make_policy("priority"), profile, wl, seed=3)
    assert by_name.requests.equals(by_object.requests)


@pytest.mark.parametrize("call, message", [
    (lambda: api.simulate("fifo", "synthetic-tiny", no_such_flag=1), "no_such_flag"),
    (lambda: api.simulate("nope", "synthetic-tiny"), "nope"),
    (lambda: api.simulate("fifo", "synthetic-tiny",
                          api.describe_workload("synthetic-tiny", duration=1), rate=3),
     "not both"),
    (lambda: api.compare(["fifo"], "synthetic-tiny", params={"reef": {"x": 1}}), "reef"),
    # a script's values arrive untyped: each is named before any work starts
    (lambda: api.simulate("fifo", "synthetic-tiny", max_batch=0), "^max_batch must be"),
    (lambda: api.simulate("fifo", "synthetic-tiny", slots=2.5), "^slots: expected int"),
    (lambda: api.simulate("fifo", "synthetic-tiny", gpus=2.0), "^gpus: expected int"),
    (lambda: api.simulate("fifo", "synthetic-tiny", gpus=True), "^gpus: expected int"),
    (lambda: api.simulate("fifo", "synthetic-tiny", nodes=0), "^nodes must be"),
    (lambda: api.simulate("fifo", "synthetic-tiny", seed=-1), "^seed must be"),
    (lambda: api.simulate("fifo", "synthetic-tiny", seed=None), "^seed: expected int"),
    (lambda: api.simulate("fifo", "synthetic-tiny", interference="no"), "^interference"),
    (lambda: api.load_profile(3), "^profile must be"),
    (lambda: api.compare(5, "synthetic-tiny"), "^policies must be names"),
    (lambda: api.compare(["fifo"], "synthetic-tiny", loads=[0.5, "x"]), "'x' is not"),
    (lambda: api.compare(["fifo"], "synthetic-tiny", loads="0.5,-1"), "> 0, got -1"),
    (lambda: api.compare(["fifo"], "synthetic-tiny", seeds=1.5), "whole number"),
    (lambda: api.compare(["fifo"], "synthetic-tiny", slots=0), "^slots must be"),
])
def test_bad_input_is_one_user_error(call, message):
    with pytest.raises(UserError, match=message):
        call()


def test_workload_kind_as_text_is_the_workload_flag():
    """``workload="mmpp"`` is ``--workload mmpp`` (as compare takes it), not an object."""
    by_text = api.simulate("fifo", "synthetic-tiny", workload="mmpp", rate=40, duration=2,
                           seed=2)
    wl = api.describe_workload("synthetic-tiny", workload="mmpp", rate=40, duration=2)
    by_object = api.simulate("fifo", "synthetic-tiny", wl, seed=2)
    assert wl.describe()["kind"] == "mmpp"
    assert by_text.requests.equals(by_object.requests)


def test_loads_and_policies_as_text_are_the_flags():
    as_text = api.compare("fifo,priority", "synthetic-tiny", seeds=1, loads="0.4",
                          duration=1)
    as_lists = api.compare(["fifo", "priority"], "synthetic-tiny", seeds=1, loads=[0.4],
                           duration=1)
    assert as_text.policies == ["fifo", "priority"] and as_text.loads == [0.4]
    assert as_text.runs.equals(as_lists.runs)


def test_compare_matches_the_cli(tmp_path, capsys):
    c = api.compare(["fifo", "priority"], "synthetic-tiny", seeds=2, rate=40, duration=1)
    assert list(c.table["policy"]) == ["fifo", "priority"] and len(c.runs) == 4
    assert c.reference == "fifo" and list(c.reference_table["baseline"]) == ["priority"]
    assert main(["compare", "--policies", "fifo,priority", "--profile", "synthetic-tiny",
                 "--seeds", "2", "--rate", "40", "--duration", "1", "--quiet",
                 "--out", str(tmp_path / "cmp")]) == 0
    import pandas as pd

    cli_runs = pd.read_csv(tmp_path / "cmp" / "runs.csv")
    assert list(cli_runs["policy"]) == list(c.runs["policy"])
    assert cli_runs["hp_violation"].tolist() == pytest.approx(
        c.runs["hp_violation"].tolist())


def test_plain_param_when_one_policy_runs():
    assert api.parse_policy_params(["hp_risk=0.02"], ["strait"]) == \
        {"strait": {"hp_risk": 0.02}}
    with pytest.raises(UserError, match="POLICY.NAME=VALUE"):
        api.parse_policy_params(["hp_risk=0.02"], ["strait", "fifo"])


def test_compare_from_python_writes_what_the_cli_writes(tmp_path):
    out = tmp_path / "cmp"
    c = api.compare(["fifo", "priority"], "synthetic-tiny", seeds=2, loads=[0.5, 1.0],
                    duration=1, out=out)
    assert c.out == out and "comparison.csv" in c.written
    for name in ("runs.csv", "comparison.csv", "reference.csv", "comparison.md",
                 "violation_vs_load.png", "latency_cdf_load0.5.png", "command.txt"):
        assert (out / name).is_file(), name
    assert (out / "command.txt").read_text().startswith("strait_sim.compare(policies=")
    page = api.report(out).read_text()
    assert "strait_sim.compare(policies=" in page and 'id="reference"' in page


def test_the_api_leaves_the_callers_matplotlib_backend_alone(tmp_path):
    """A notebook plots inline: simulate, compare(out=...) and report must not switch
    matplotlib to Agg under it."""
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        api.compare(["fifo", "edf"], "synthetic-tiny", seeds=1, loads=[0.5, 1.0],
                    duration=1, out=tmp_path / "cmp")
        api.report(tmp_path / "cmp")
        api.simulate("fifo", "synthetic-tiny", rate=20, duration=1).write(tmp_path / "run")
        api.report(tmp_path / "run")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)


def test_a_runs_folder_from_python_follows_the_clis_out_rule(tmp_path):
    """RunResult.write and simulate(out=...) replaced an earlier run's results silently,
    while `run --out` needs --overwrite: both now need overwrite=True, and a folder holding
    the user's files is refused even then, before anything is written."""
    first = api.simulate("fifo", "synthetic-tiny", rate=20, duration=1, seed=1)
    second = api.simulate("fifo", "synthetic-tiny", rate=20, duration=1, seed=2)
    folder = tmp_path / "run"
    first.write(folder)
    kept = (folder / "requests.parquet").read_bytes()
    earlier = rf"^{re.escape(str(folder))}: holds an earlier run result; add overwrite=True"
    with pytest.raises(UserError, match=earlier):
        second.write(folder)
    with pytest.raises(UserError, match=earlier):
        api.simulate("fifo", "synthetic-tiny", rate=20, duration=1, seed=2, out=folder)
    assert (folder / "requests.parquet").read_bytes() == kept
    second.write(folder, overwrite=True)
    assert api.load_run(folder).summary["seed"] == 2
    api.simulate("fifo", "synthetic-tiny", rate=20, duration=1, seed=3, out=folder,
                 overwrite=True)
    assert api.load_run(folder).summary["seed"] == 3
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds no strait-sim result"):
        first.write(mine, overwrite=True)
    with pytest.raises(UserError, match="holds no strait-sim result"):
        api.simulate("fifo", "synthetic-tiny", rate=20, duration=1, out=mine, overwrite=True)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    (folder / "notes.txt").write_text("mine")  # the user's file in a run folder stays
    with pytest.raises(UserError, match="'notes.txt', which strait-sim did not write; "
                                        "overwrite=True never deletes such files"):
        first.write(folder, overwrite=True)
