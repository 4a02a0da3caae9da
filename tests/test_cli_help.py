"""One CLI vocabulary: help texts show their defaults, flags carry no type noise, the same
flag means the same thing in every command, and --version works."""

from __future__ import annotations

import re

import pytest
import typer

from strait_sim import __version__
from strait_sim.cli.app import app, main


def command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    out: list[list[str]] = []

    def walk(cmd, path: list[str]) -> None:  # type: ignore[no-untyped-def]
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            out.append(path)

    walk(root, [])
    return out


def help_text(path: list[str], capsys) -> str:  # type: ignore[no-untyped-def]
    assert main([*path, "--help"]) == 0
    return capsys.readouterr().out


def test_every_help_is_plain_and_flags_have_no_type(capsys):
    paths = command_paths()
    assert ["run"] in paths and ["report"] in paths and ["sweep", "run"] in paths
    for path in paths:
        text = help_text(path, capsys)
        assert "<bool>" not in text, path
        assert "╭" not in text, path  # plain help: no Rich boxes that eat [..] markup


def test_workload_defaults_are_visible(capsys):
    text = " ".join(help_text(["run"], capsys).split())
    for default in ("[default: poisson; trace when --trace is given]",
                    "[default: 60; traces: the whole trace]", "[default: 0.2]",
                    "[default: 5]", "[default: 10]", "[default: exp]",
                    "whose [workload] table", "[default: strait]", "[default: 8]"):
        assert default in text, default


@pytest.mark.parametrize("path", [["run"], ["compare"], ["validate"]])
def test_param_is_accepted_everywhere_in_both_forms(path, capsys):
    text = help_text(path, capsys)
    assert "--param" in text


def test_force_only_means_a_busy_device(capsys):
    for path in (["compare"], ["sweep", "run"], ["plan"]):
        text = help_text(path, capsys)
        assert "--force" not in text and "--rerun" in text, path
    for path in (["run"], ["validate"]):
        text = " ".join(help_text(path, capsys).split())
        assert re.search(r"--force\s+(Live: start|Start) even if the device", text), path


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"strait-sim {__version__}"


def test_run_param_plain_and_qualified_agree(tmp_path):
    import json

    a, b = tmp_path / "a", tmp_path / "b"
    base = ["run", "--policy", "strait", "--profile", "synthetic-tiny", "--rate", "40",
            "--duration", "1", "--quiet"]
    assert main([*base, "--param", "hp_risk=0.02", "--out", str(a)]) == 0
    assert main([*base, "--param", "strait.hp_risk=0.02", "--out", str(b)]) == 0
    pa = json.loads((a / "summary.json").read_text())["policy_params"]
    assert pa == json.loads((b / "summary.json").read_text())["policy_params"]
    assert pa["hp_risk"] == 0.02
