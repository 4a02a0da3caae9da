"""Validation study (replicated, several loads) and the drift probe, without a live device.

The "live" runs here are simulations with other seeds (a stand-in device following the same
truth), so the statistics can be checked end to end on any machine; the drift probe runs on
a fake backend whose forwards are a known factor slower than the profile.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from drift_fakes import SlowedBackend

from strait_sim import api
from strait_sim.cli.app import main
from strait_sim.engine.simulator import SimConfig
from strait_sim.experiment import run_simulation
from strait_sim.live.drift import probe, probe_and_report, probe_points
from strait_sim.live.report import write_validation
from strait_sim.live.study import parse_loads, run_study


def _fake_cell(calls):
    bundle = api.load_profile("synthetic-tiny")

    def cell(*, policy, out, seed, load):
        calls.append((policy, load, seed))
        wl = api.describe_workload(bundle, load=load, duration=2.0, max_batch=4)
        cfg = SimConfig(gpus=1, slots=2, max_batch=4, seed=seed)
        live = run_simulation(bundle, wl, api.make_policy(policy), cfg)
        sim = run_simulation(bundle, wl, api.make_policy(policy),
                             SimConfig(gpus=1, slots=2, max_batch=4, seed=seed + 1000))
        write_validation(out, live, sim, command="test")
    return cell


def test_study_replicates_and_draws_the_error_against_load(tmp_path):
    calls: list = []
    study = run_study(policies=["fifo"], loads=[0.3, 0.7], repeats=2, seed=0,
                      out=tmp_path, run_cell=_fake_cell(calls))
    assert len(calls) == 4 and {c[2] for c in calls} == {0, 1}
    # repeat by repeat, so that the device's drift over minutes spreads over every load
    assert [c[2] for c in calls] == [0, 0, 1, 1] and [c[1] for c in calls] == [0.3, 0.7] * 2
    cell = study["cells"]["fifo"]["0.7"]
    assert cell["repeats"] == 2 and "replications" in cell["method"]
    for cls in ("high", "low", "all"):
        c = cell["classes"][cls]
        for stat in ("mean", "p50", "p95", "p99", "violation"):
            assert np.isfinite(c[stat]["error"])
            lo, hi = c[stat]["ci95"]
            assert lo <= hi
            assert len(c[stat]["per_repeat"]["live"]) == 2
        assert c["target"]["met"] in (True, False, None)
    for f in ("study.json", "study.md", "error_vs_load_fifo.png"):
        assert (tmp_path / f).is_file()
    assert json.loads((tmp_path / "study.json").read_text())["repeats"] == 2
    # resumable: the cells on disk are reused
    run_study(policies=["fifo"], loads=[0.3, 0.7], repeats=2, seed=0, out=tmp_path,
              run_cell=_fake_cell(calls))
    assert len(calls) == 4


def test_one_repeat_uses_a_block_bootstrap(tmp_path):
    study = run_study(policies=["fifo"], loads=[0.6], repeats=1, seed=3, out=tmp_path,
                      run_cell=_fake_cell([]))
    cell = study["cells"]["fifo"]["0.6"]
    assert "bootstrap" in cell["method"]
    assert cell["classes"]["all"]["mean"]["ci95"] is not None


@pytest.mark.parametrize("argv,needle", [
    (["--repeats", "0"], "--repeats must be >= 1"),
    (["--loads", "-0.5"], "positive"),
    (["--loads", "0.2,x"], "not a number"),
])
def test_bad_study_input_is_one_line_exit_2(tmp_path, capsys, argv, needle):
    code = main(["validate", "--live", "--cpu", "--policy", "fifo", "--out",
                 str(tmp_path / "v"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert needle in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "v").exists()


def test_parse_loads():
    assert parse_loads("0.2, 0.4,0.8") == [0.2, 0.4, 0.8]
    assert parse_loads(None) is None


def test_the_drift_probe_flags_a_device_made_1_3x_slower(tmp_path):
    bundle = api.load_profile("synthetic-tiny")
    points = probe_points(bundle, None, 8)
    slow = probe(bundle, SlowedBackend(bundle, 1.3), points)
    assert slow.flagged and slow.ratio == pytest.approx(1.3, rel=0.05)
    assert "% slower" in slow.message() and "recalibrate" in slow.message()
    same = probe(bundle, SlowedBackend(bundle, 1.0, seed=1), points)
    assert not same.flagged and same.ratio == pytest.approx(1.0, abs=0.05)
    backend = SlowedBackend(bundle, 1.3)
    report = probe_and_report(bundle, live_kind="cpu", gpu=None, out=tmp_path, models=None,
                              max_batch=8, backend_factory=lambda models: backend)
    assert report.flagged and backend.closed
    saved = json.loads((tmp_path / "drift.json").read_text())
    assert saved["flagged"] and len(saved["points"]) == len(points)


def test_the_drift_probe_flags_one_model_off_its_profile():
    # measured: a geometric mean of 5% hid densenet121@1 15% off (docs/validation.md)
    bundle = api.load_profile("synthetic-tiny")
    points = probe_points(bundle, None, 8)
    model = points[0][0]
    report = probe(bundle, SlowedBackend(bundle, 1.25, model=model, noise=0.01), points)
    assert abs(report.ratio - 1) < 0.15 and report.flagged
    assert f"{model}@" in report.message() and "beyond" in report.message()


def test_the_study_command_reaches_the_study_with_every_option(tmp_path, monkeypatch):
    """validate --loads/--repeats hands all its options to the study (a CLI option added
    to validate but not to the study once made the command fail before any cell ran)."""
    import strait_sim.live.study as study_module

    seen: dict = {}

    def fake_run_study(**kw):
        seen.update(kw)
        kw["out"].mkdir(parents=True, exist_ok=True)
        return {"cells": {}}

    monkeypatch.setattr(study_module, "run_study", fake_run_study)
    out = tmp_path / "study"
    code = main(["validate", "--live", "--cpu", "--policy", "fifo,strait", "--profile",
                 "synthetic-tiny", "--no-probe", "--force", "--quiet", "--loads", "0.4,0.8",
                 "--repeats", "2", "--out", str(out)])
    assert code == 0
    assert seen["policies"] == ["fifo", "strait"] and seen["loads"] == [0.4, 0.8]
    assert seen["repeats"] == 2 and (out / "command.txt").is_file()


def _study_argv(out) -> list[str]:
    return ["validate", "--live", "--cpu", "--policy", "fifo", "--profile", "synthetic-tiny",
            "--no-probe", "--force", "--quiet", "--loads", "0.3,0.7", "--repeats", "2",
            "--out", str(out)]


def _stopping_validate(calls: list, stop: dict):
    """A stand-in for api.validate that runs fake cells and raises KeyboardInterrupt (a
    Ctrl-C between cells) once ``stop["after"]`` cells have run; None: never."""
    fake = _fake_cell(calls)

    def validate(policy, device, *, out, seed, load, **_kw):
        if len(calls) == stop["after"]:
            raise KeyboardInterrupt
        fake(policy=policy, out=out, seed=seed, load=load)
    return validate


def test_an_interrupted_study_resumes_where_it_stopped(tmp_path, monkeypatch, capsys):
    """Ctrl-C after two of four cells, then the same command again: the two finished cells
    are reused and the study completes (the unfinished study, without study.json, was once
    refused as 'holds no strait-sim result', so it could never resume)."""
    calls: list = []
    stop = {"after": 2}
    monkeypatch.setattr(api, "validate", _stopping_validate(calls, stop))
    out = tmp_path / "study"
    assert main(_study_argv(out)) == 130
    assert not (out / "study.json").exists() and len(calls) == 2
    # a plain Ctrl-C between cells (not in a live run) once exited 130 silently
    err = capsys.readouterr().err.strip()
    assert err == (f"interrupted: 2 of 4 cells of the study are complete in {out}; the same "
                   "command resumes it")
    stop["after"] = None
    assert main(_study_argv(out)) == 0, capsys.readouterr().err
    assert len(calls) == 4 and calls[2:] == [("fifo", 0.3, 1), ("fifo", 0.7, 1)]
    assert json.loads((out / "study.json").read_text())["repeats"] == 2
    # a finished study is resumed too (nothing runs again), not refused
    assert main(_study_argv(out)) == 0 and len(calls) == 4
    # while a folder of the user's is still refused, in one line, and left as it was
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(_study_argv(mine)) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no strait-sim result" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and len(calls) == 4


def test_ctrl_c_in_a_live_cell_stops_the_study_and_that_cell_runs_again(tmp_path, monkeypatch,
                                                                       capsys):
    """A Ctrl-C inside a cell's live run ends that run early (it is written, marked
    interrupted); the study once went on to the next cells and, on a resume, reused the
    partial cell as a replicate. Now the study stops there and the cell runs again."""
    calls: list = []
    fake = _fake_cell(calls)
    interrupt_at = {2}

    def validate(policy, device, *, out, seed, load, **_kw):
        fake(policy=policy, out=out, seed=seed, load=load)
        if len(calls) in interrupt_at:  # as run_live marks a run stopped by Ctrl-C
            summary = json.loads((out / "live" / "summary.json").read_text())
            summary.setdefault("executor", {})["interrupted"] = True
            (out / "live" / "summary.json").write_text(json.dumps(summary))

    monkeypatch.setattr(api, "validate", validate)
    out = tmp_path / "study"
    assert main(_study_argv(out)) == 130
    err = capsys.readouterr().err.strip()
    assert len(calls) == 2 and not (out / "study.json").exists()
    assert err.startswith("interrupted: 1 of 4 cells") and "resumes" in err
    assert len(err.splitlines()) == 1
    interrupt_at.clear()
    assert main(_study_argv(out)) == 0, capsys.readouterr().err
    # the interrupted cell (repeat 1, load 0.7) ran again, then the two of repeat 2
    assert calls[2:] == [("fifo", 0.7, 0), ("fifo", 0.3, 1), ("fifo", 0.7, 1)]
    assert json.loads((out / "study.json").read_text())["repeats"] == 2


def test_report_gives_a_studys_page_and_says_what_an_unfinished_one_needs(
        tmp_path, monkeypatch, capsys):
    """`report DIR` on a study was refused ('not a run, comparison or validation folder')
    while `validate --report DIR` rendered it: it now gives the study's page, summed up from
    the cells as validate --report does, and leaves the study's own files as they were."""
    from strait_sim.html_report import table_html
    from strait_sim.live.study import STUDY_COLUMNS, study_rows

    calls: list = []
    stop = {"after": 2}
    monkeypatch.setattr(api, "validate", _stopping_validate(calls, stop))
    out = tmp_path / "study"
    assert main(_study_argv(out)) == 130  # two of four cells, no study.json yet
    capsys.readouterr()
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has not finished" in err[0] and "validate command" in err[0]
    # validate --report says the same (it named a cell's missing requests.parquet)
    assert main(["validate", "--report", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == err
    stop["after"] = None
    assert main(_study_argv(out)) == 0
    kept = {f: (out / f).read_bytes() for f in ("study.json", "study.md",
                                                "error_vs_load_fifo.png")}
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out / 'report.html'}"
    page = (out / "report.html").read_text()
    stored = json.loads(kept["study.json"])
    assert "strait-sim validation study report" in page and page.count("<figure") == 1
    assert table_html(STUDY_COLUMNS, study_rows(stored["cells"]["fifo"]), table_id="study-0",
                      left=3) in page  # the numbers study.json holds
    assert (out / "command.txt").read_text().strip() in page
    assert {f: (out / f).read_bytes() for f in kept} == kept
    # the page is the tool's: the study still resumes (nothing reruns), --report still works
    assert main(_study_argv(out)) == 0 and len(calls) == 4
    assert main(["validate", "--report", str(out), "--quiet"]) == 0


def _stand_in_live(monkeypatch, calls: list) -> None:
    """api.validate's live run replaced by a simulation with another seed (no device);
    ``calls`` counts the live runs started."""
    import strait_sim.live.runner as runner

    def run_live(bundle, workload, policy, config, options):
        calls.append(config.seed)
        return run_simulation(bundle, workload, policy,
                              SimConfig(gpus=1, slots=config.slots,
                                        max_batch=config.max_batch, seed=config.seed + 1000))

    monkeypatch.setattr(runner, "run_live", run_live)


def test_validate_from_python_replaces_an_earlier_validation_only_with_overwrite(
        tmp_path, monkeypatch):
    """A second api.validate into the same folder once replaced the first silently; it now
    follows validate --out's rule, as api.simulate follows run --out's."""
    from strait_sim.errors import UserError

    calls: list = []
    _stand_in_live(monkeypatch, calls)
    out = tmp_path / "v"
    kw = {"out": out, "profile": "synthetic-tiny", "rate": 40, "duration": 1}
    api.validate("fifo", "cpu", **kw)
    first = (out / "report.json").read_bytes()
    with pytest.raises(UserError, match="earlier validation report; add overwrite=True"):
        api.validate("fifo", "cpu", seed=1, **kw)
    assert len(calls) == 1 and (out / "report.json").read_bytes() == first
    api.validate("fifo", "cpu", seed=1, overwrite=True, **kw)
    assert len(calls) == 2 and (out / "report.json").read_bytes() != first


def test_validate_from_python_refuses_a_users_folder_before_the_live_run(tmp_path,
                                                                          monkeypatch):
    """A folder of the user's files was refused only after the live run and the simulation
    (minutes on a device); it is now refused before either, and left as it was."""
    import strait_sim.live.runner as runner
    from strait_sim.errors import UserError

    def run_live(*_a, **_kw):
        raise AssertionError("the live run started before the folder was checked")

    monkeypatch.setattr(runner, "run_live", run_live)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for extra in ({}, {"overwrite": True}):
        with pytest.raises(UserError, match="holds no strait-sim result"):
            api.validate("fifo", "cpu", out=mine, profile="synthetic-tiny", rate=40,
                         duration=1, **extra)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_a_study_reruns_an_interrupted_cell_into_its_own_folder(tmp_path, monkeypatch,
                                                                capsys):
    """The study's cells call api.validate, which now refuses an earlier validation
    without overwrite: a cell whose live run was interrupted must still be replaced by its
    rerun (the cell folders are the study's own), through the real api.validate."""
    calls: list = []
    _stand_in_live(monkeypatch, calls)
    import strait_sim.live.runner as runner

    plain = runner.run_live

    def run_live(bundle, workload, policy, config, options):
        result = plain(bundle, workload, policy, config, options)
        if len(calls) == 2 and interrupt:  # as run_live marks a run stopped by Ctrl-C
            result.summary.setdefault("executor", {})["interrupted"] = True
        return result

    monkeypatch.setattr(runner, "run_live", run_live)
    out = tmp_path / "study"
    argv = ["validate", "--live", "--cpu", "--policy", "fifo", "--profile",
            "synthetic-tiny", "--no-probe", "--force", "--quiet", "--rate", "40",
            "--duration", "1", "--repeats", "2", "--out", str(out)]
    interrupt = True
    assert main(argv) == 130
    assert "interrupted: 1 of 2 cells" in capsys.readouterr().err
    interrupt = False
    assert main(argv) == 0, capsys.readouterr().err
    assert calls == [0, 1, 1]  # the interrupted cell (seed 1) ran again, replaced
    assert json.loads((out / "study.json").read_text())["repeats"] == 2


def test_validate_cli_overwrite_reaches_the_python_check(tmp_path, monkeypatch, capsys):
    """validate --live --overwrite replaces an earlier validation: the flag is handed to
    api.validate, which now checks the folder itself."""
    calls: list = []
    _stand_in_live(monkeypatch, calls)
    out = tmp_path / "v"
    argv = ["validate", "--live", "--cpu", "--policy", "fifo", "--profile", "synthetic-tiny",
            "--no-probe", "--force", "--quiet", "--rate", "40", "--duration", "1",
            "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "add --overwrite" in err and len(err.splitlines()) == 1 and len(calls) == 1
    assert main([*argv, "--overwrite"]) == 0, capsys.readouterr().err
    assert len(calls) == 2


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """A finished one-cell study (fifo, load 0.5, one repeat) to copy and damage."""
    out = tmp_path_factory.mktemp("finished") / "study"
    run_study(policies=["fifo"], loads=[0.5], repeats=1, seed=0, out=out,
              run_cell=_fake_cell([]))
    return out


@pytest.mark.parametrize("field,value,needle", [
    ("policies", [], "'policies' must be a non-empty list of policy names, got []"),
    ("policies", "fifo", "'policies' must be a non-empty list"),
    ("policies", ["../fifo"], "'policies' must be a non-empty list"),
    ("repeats", 0, "'repeats' must be a whole number >= 1, got 0"),
    ("repeats", 1.5, "'repeats' must be a whole number >= 1, got 1.5"),
    ("repeats", True, "'repeats' must be a whole number"),
    ("seed", -1, "'seed' must be a whole number >= 0, got -1"),
    ("seed", "0", "'seed' must be a whole number >= 0"),
    ("loads", [], "'loads' must be a list of positive numbers, or [null]"),
    ("loads", [0.5, None], "'loads' must be a list of positive numbers"),
    ("loads", [-0.5], "'loads' must be a list of positive numbers"),
    ("seed", None, "no 'seed' field"),
    (None, [1, 2], "not a JSON object"),
])
@pytest.mark.parametrize("command", [["report"], ["validate", "--quiet", "--report"]])
def test_a_damaged_study_json_is_one_line_naming_the_field(
        finished_study, tmp_path, capsys, field, value, needle, command):
    """study.json's shape drives the summary: `"policies": []` once gave a traceback in
    `report` (or "0 policies" from validate --report), `"repeats": 0` said "--repeats
    must be >= 1" of a flag nobody gave. Each field is now checked, in one line naming
    DIR/study.json and the field, and nothing is written."""
    import shutil

    out = tmp_path / "study"
    shutil.copytree(finished_study, out)
    data = json.loads((out / "study.json").read_text())
    if field is None:
        data = value
    elif value is None:
        del data[field]
    else:
        data[field] = value
    (out / "study.json").write_text(json.dumps(data))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert main([*command, str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: {out}/study.json: ") and needle in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("where", ["drift probe", "simulation"])
def test_ctrl_c_anywhere_in_a_study_says_how_far_it_got(tmp_path, monkeypatch, capsys,
                                                        where):
    """Only a Ctrl-C inside a cell's live run said how to resume; one in the drift probe,
    the model preparation or a cell's simulation half exited 130 silently (typer's way
    with an uncaught KeyboardInterrupt). Every one now gives the one line."""
    import strait_sim.experiment as experiment
    from strait_sim.cli import validate_cmd

    calls: list = []
    _stand_in_live(monkeypatch, calls)
    argv = ["validate", "--live", "--cpu", "--policy", "fifo", "--profile", "synthetic-tiny",
            "--force", "--quiet", "--rate", "40", "--duration", "1", "--repeats", "2",
            "--out", str(tmp_path / "study")]
    if where == "drift probe":
        def drift_step(**_kw):
            raise KeyboardInterrupt
        monkeypatch.setattr(validate_cmd, "_drift_step", drift_step)
        expect, runs = 0, 0
    else:
        plain = experiment.run_simulation

        def run_simulation(*a, **kw):
            if len(calls) == 2:  # the second cell's live run is done: its simulation
                raise KeyboardInterrupt
            return plain(*a, **kw)
        monkeypatch.setattr(validate_cmd, "_drift_step", lambda **_kw: None)
        monkeypatch.setattr(experiment, "run_simulation", run_simulation)
        expect, runs = 1, 2
    out = tmp_path / "study"
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err == (f"interrupted: {expect} of 2 cells of the study are complete in {out}; "
                   "the same command resumes it"), err
    assert len(calls) == runs and not (out / "study.json").exists()


def test_validate_overwrite_replaces_the_drift_files_it_wrote(tmp_path):
    """validate writes drift.json (and recalibrated-profile) after the comparison itself;
    they were not in the folder's list of the tool's files, so the next `--overwrite` said
    "holds 'drift.json', which strait-sim did not write"."""
    from dataclasses import dataclass

    from strait_sim.cli.validate_cmd import _keep_drift
    from strait_sim.output_folder import check_output_folder

    @dataclass
    class Drift:
        ratio: float = 1.0

        def message(self) -> str:
            return "no drift"

    out = tmp_path / "v"
    _fake_cell([])(policy="fifo", out=out, seed=0, load=0.3)
    fresh = tmp_path / ".v.recalibrated-profile"
    fresh.mkdir()
    _keep_drift(out, Drift(), fresh, attach=False)
    assert (out / "drift.json").is_file() and (out / "recalibrated-profile").is_dir()
    check_output_folder(out, "validation", overwrite=True)  # the tool's own: no refusal
    # stopped before the results existed: the recalibrated profile is not left behind
    fresh.mkdir()
    _keep_drift(tmp_path / "never", Drift(), fresh, attach=False)
    assert not fresh.exists()
