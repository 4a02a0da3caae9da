"""`strait-sim run`: the main job works, and bad input is one line, non-zero, no output."""

from __future__ import annotations

import json
import shutil

import pytest

from strait_sim.cli.app import main

BASE = ["run", "--profile", "synthetic-tiny", "--workload", "poisson", "--rate", "300",
        "--duration", "3", "-q"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return err


def test_run_writes_results_and_trace(tmp_path, capsys):
    out, trace = tmp_path / "run", tmp_path / "t.json"
    assert main(BASE + ["--policy", "priority", "--seed", "2", "--out", str(out),
                        "--trace-out", str(trace)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["policy"] == "priority" and summary["seed"] == 2
    assert summary["profile"]["name"] == "synthetic-tiny"
    assert summary["workload"]["kind"]
    events = json.loads(trace.read_text())["traceEvents"]
    tracks = {e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert {"slot 0", "slot 1", "h2d", "d2h"} <= tracks


@pytest.mark.parametrize("args, needle", [
    (["--policy", "nosuch"], "unknown policy 'nosuch'; valid: "),
    (["--policy", "fifo", "--models", "ghost"], "unknown model 'ghost'"),
    (["--policy", "fifo", "--rate", "-5"], "rate"),
    (["--policy", "fifo", "--slots", "0"], "--slots must be at least 1"),
])
def test_bad_input_is_one_line(args, needle, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(BASE + args + ["--out", str(out)]) != 0
    assert needle in _one_line_error(capsys)
    assert not out.exists()
    assert not list(tmp_path.iterdir())  # no temporary leftovers either


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(BASE + ["--policy", "fifo", "--out", str(blocker / "sub")]) != 0
    assert "cannot write output" in _one_line_error(capsys)


def test_malformed_profile_is_named(tmp_path, synthetic_bundle_path, capsys):
    bad = tmp_path / "badprofile"
    shutil.copytree(synthetic_bundle_path, bad)
    (bad / "models.csv").write_text("model,params\nx,1\n")
    out = tmp_path / "out"
    assert main(["run", "--profile", str(bad), "--policy", "fifo", "--rate", "10",
                 "--duration", "1", "-q", "--out", str(out)]) != 0
    err = _one_line_error(capsys)
    assert "badprofile/models.csv, line 1: missing column(s)" in err
    assert not out.exists()


def test_profiles_and_policies_listings(capsys):
    assert main(["profiles"]) == 0
    assert "synthetic-tiny" in capsys.readouterr().out
    assert main(["policies"]) == 0
    listing = capsys.readouterr().out
    for name in ("fifo", "edf", "priority"):
        assert any(line.startswith(name) for line in listing.splitlines())


def test_policy_parameters_reach_the_policy_and_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(BASE + ["--policy", "strait", "--param", "hp_risk=0.02", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["policy_params"]["hp_risk"] == 0.02
    assert main(BASE + ["--policy", "strait", "--param", "bogus=1"]) != 0
    assert "bogus" in _one_line_error(capsys)


def test_unknown_flag_and_bare_command_show_usage_not_traceback(capsys):
    assert main(["run", "--bogus"]) == 2
    captured = capsys.readouterr()
    assert "No such option: --bogus" in captured.err and "Traceback" not in captured.err
    assert main([]) == 2
    captured = capsys.readouterr()
    assert "Usage" in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err
