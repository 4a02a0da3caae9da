"""strait-sim plan: targets, the confidence rule, the search, the cost, the front, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from strait_sim.cli.app import main
from strait_sim.errors import UserError
from strait_sim.plan.confidence import MEETS, MISSES, UNSURE, bound
from strait_sim.plan.evaluate import Evaluator, PointResult, fixed_workload
from strait_sim.plan.front import pareto_front
from strait_sim.plan.search import FamilySearch, grid_search, search
from strait_sim.plan.space import (
    Config,
    Family,
    SearchSpace,
    build_space,
    check_cost,
    cost_from_expression,
    gpu_count_cost,
    parse_gpu_range,
    parse_param_grid,
)
from strait_sim.plan.targets import Target, parse_targets

# -- targets and confidence -----------------------------------------------------------------


def test_targets_parse_per_class():
    ts = parse_targets("high=0.99,low=0.9", p99="hp=250", mean="low=80")
    assert ts == [Target("high", "on_time", 0.99), Target("low", "on_time", 0.9),
                  Target("high", "p99", 250.0), Target("low", "mean", 80.0)]
    summary = {"by_class": {"high": {"violation_rate": 0.02, "p99_ms": 300.0},
                            "low": {"violation_rate": None, "mean_ms": None}}}
    assert ts[0].value(summary) == pytest.approx(0.98) and not ts[0].met_by(0.98)
    assert ts[1].value(summary) == 1.0  # no LP requests: vacuously on time
    assert ts[3].value(summary) == math.inf  # none completed: never meets a latency bound


@pytest.mark.parametrize("text", ["high", "high=", "=0.9", "mid=0.9", "high=abc",
                                  "high=1.5", "high=0", "high=0.9,high=0.95", "high=nan", ""])
def test_malformed_target_is_one_user_error(text):
    with pytest.raises(UserError):
        parse_targets(text)


def test_no_target_is_an_error():
    with pytest.raises(UserError, match="no target"):
        parse_targets()


def test_confidence_rule():
    # tight values above the bound: met; the mean above but spread wide: unsure
    assert bound([0.995, 0.996, 0.994], 0.99, True, 0.95).verdict == MEETS
    assert bound([0.999, 0.98, 0.995], 0.99, True, 0.95).verdict == UNSURE
    assert bound([0.95, 0.96, 0.955], 0.99, True, 0.95).verdict == MISSES
    b = bound([0.991, 0.993, 0.992, 0.990, 0.994], 0.99, True, 0.95)
    # t_{0.95,4} = 2.132, s = 0.00158: lower bound = 0.992 - 2.132 * 0.00158 / sqrt(5)
    assert b.lower == pytest.approx(0.992 - 2.1318 * 0.0015811 / math.sqrt(5), abs=1e-6)
    assert b.verdict == MEETS  # 0.99049 >= 0.99
    # latency: at most the bound
    assert bound([100.0, 101.0, 99.0], 120.0, False, 0.95).verdict == MEETS
    assert bound([100.0, math.inf], 120.0, False, 0.95).verdict == MISSES
    assert bound([0.97], 0.99, True, 0.95).verdict == MISSES  # one seed: the value itself


# -- the search on a known step function ----------------------------------------------------


def run_family(threshold: int, gmin: int, cap: int, start: int) -> FamilySearch:
    fs = FamilySearch(Family("fifo"), gmin, cap, start)
    while (g := fs.propose()) is not None:
        assert gmin <= g <= cap and g not in fs.probes
        fs.record(g, g >= threshold)
    return fs


@pytest.mark.parametrize("start", [1, 3, 7, 20, 40])
def test_family_search_finds_every_threshold(start):
    for threshold in range(1, 42):  # 41: nothing in [1, 40] meets
        fs = run_family(threshold, 1, 40, start)
        assert fs.answer == (threshold if threshold <= 40 else None)
        if fs.answer is not None and fs.answer > 1:
            assert fs.answer - 1 in fs.probes  # the count below was shown to miss
        distance = abs(threshold - start) + 1
        assert len(fs.probes) <= 2 * math.ceil(math.log2(distance)) + 3, (threshold, fs.probes)


def fake_evaluator(thresholds: dict[Family, int], calls: list):
    def evaluate(configs: list[Config], seeds: list[int]) -> list[PointResult]:
        calls.append(list(configs))
        out = []
        for c in configs:
            ok = c.gpus >= thresholds[c.family]
            out.append(PointResult(c, float(c.gpus), tuple(seeds), {},
                                   MEETS if ok else MISSES,
                                   {"high": 1.0 if ok else 0.5, "low": c.gpus / 100},
                                   {"high": 1.0, "low": 1.0}))
        return out
    return evaluate


def test_search_prunes_within_a_policy_and_runs_policies_side_by_side():
    fams = [Family("priority", (), 2, 4), Family("priority", (), 1, 4),
            Family("priority", (), 2, 1), Family("edf", (), 2, 4), Family("fifo", (), 2, 4)]
    thresholds = dict(zip(fams, [12, 15, 10, 13, 99], strict=True))
    space = SearchSpace(tuple(fams), 1, 32)
    calls: list = []
    result = search(space, gpu_count_cost, fake_evaluator(thresholds, calls), [0, 1],
                    start=8)
    answers = {name: g.best.config.gpus if g.best else None
               for name, g in result.groups.items()}
    assert answers == {"priority": 10, "edf": 13, "fifo": None}
    assert result.best.config == Config(fams[2], 10)
    statuses = [o.status for o in result.groups["priority"].families]
    # slots=1 cannot beat 12 GPUs: one evaluation, at 11, settles it
    assert statuses == ["found", "cannot beat the group's best", "found"]
    assert result.groups["priority"].families[1].probes == [11]
    # the first policy ran alone; edf and fifo then shared rounds
    assert all(len({c.family.policy for c in batch}) == 1 for batch in calls[:5])
    assert any({c.family.policy for c in batch} == {"edf", "fifo"} for batch in calls)
    evaluated = {p.config for p in result.points}
    assert len(evaluated) < space.size() / 5
    # the whole grid gives the same answers, with every configuration simulated
    grid = grid_search(space, gpu_count_cost, fake_evaluator(thresholds, []), [0, 1])
    assert {n: g.best.config if g.best else None for n, g in grid.groups.items()} == \
        {n: g.best.config if g.best else None for n, g in result.groups.items()}
    assert len(grid.points) == space.size()


def test_cost_pruning_uses_the_cost_not_the_gpu_count():
    fams = [Family("priority", (), 2, 4), Family("priority", (), 1, 4)]
    cost = cost_from_expression("gpus * slots")  # slots=1 is half the price per GPU
    space = SearchSpace(tuple(fams), 1, 32)
    check_cost(space, cost)
    calls: list = []

    def evaluate(configs, seeds):
        calls.append(configs)
        return [PointResult(c, cost(c), tuple(seeds), {},
                            MEETS if c.gpus >= {2: 10, 1: 15}[c.family.slots] else MISSES,
                            {"high": 1.0, "low": 1.0}, {"high": 1.0, "low": 1.0})
                for c in configs]

    result = search(space, cost, evaluate, [0], start=10)
    best = result.groups["priority"].best
    assert best.config == Config(fams[1], 15) and best.cost == 15.0  # 15 x 1 < 10 x 2


# -- space, cost, front ---------------------------------------------------------------------


def test_cost_expressions_are_arithmetic_only():
    c = Config(Family("fifo", (), 2, 4), 3)
    assert cost_from_expression("2.5*gpus + 0.5*gpus*slots")(c) == pytest.approx(10.5)
    for bad in ("__import__('os')", "gpus.real", "open", "gpus if 1 else 2", "gpus +"):
        with pytest.raises(UserError):
            cost_from_expression(bad)
    space = SearchSpace((Family("fifo"),), 1, 4)
    with pytest.raises(UserError, match="must not decrease"):
        check_cost(space, cost_from_expression("10 - gpus"))
    with pytest.raises(UserError, match="cannot be computed"):
        check_cost(space, cost_from_expression("1 / (gpus - 2)"))
    # the names are floats, as the constants: a tower of int powers was exact big-integer
    # arithmetic (3**3**3**3 never ends); as floats it overflows at once
    with pytest.raises(UserError, match="cannot be computed"):
        check_cost(space, cost_from_expression("gpus**gpus**gpus**gpus"))


def test_space_parsing_and_empty_spaces():
    assert parse_gpu_range("4") == (4, 4) and parse_gpu_range("2:9") == (2, 9)
    assert parse_gpu_range("1-16") == (1, 16)
    for bad in ("5:3", "0", "x", "1:y"):
        with pytest.raises(UserError):
            parse_gpu_range(bad)
    grid = parse_param_grid(["strait.hp_risk=0.01,0.05", "strait.mode=[1, 2]"], ["strait"])
    assert grid == {"strait": {"hp_risk": [0.01, 0.05], "mode": [1, 2]}}
    space = build_space(["strait", "fifo"], grid, [1, 2], [4], (1, 8))
    assert len(space.families) == 2 * 2 * 2 + 2 and space.size() == 10 * 8
    with pytest.raises(UserError, match="empty"):
        build_space([], {}, [1], [4], (1, 8))
    with pytest.raises(UserError):
        parse_param_grid(["edf.x=1"], ["strait"])


def test_pareto_front():
    fam = Family("fifo")

    def pt(g, hp, lp):
        return PointResult(Config(fam, g), float(g), (0,), {}, MEETS, {"high": hp, "low": lp},
                           {"high": 1.0, "low": 1.0})

    a, b, c, d = pt(4, 0.9, 0.5), pt(5, 0.95, 0.4), pt(6, 0.94, 0.3), pt(6, 0.99, 0.6)
    assert pareto_front([a, b, c, d]) == [a, b, d]  # c is beaten by b (cheaper, better)


# -- the workload is pinned across GPU counts -------------------------------------------------


def test_load_is_counted_in_gpus_and_pinned():
    wl = fixed_workload({"load": 2.0, "duration": 1.0}, "synthetic-tiny", max_batch=4)
    assert "load" not in wl and wl["rate"] > 0
    half = fixed_workload({"load": 1.0, "duration": 1.0}, "synthetic-tiny", max_batch=4)
    assert wl["rate"] == pytest.approx(2 * half["rate"])
    ev = Evaluator("synthetic-tiny", wl, [Target("high", "on_time", 0.9)], gpu_count_cost)
    specs = [ev.spec(Config(Family("fifo", (), 2, 4), g), 0) for g in (1, 8)]
    assert specs[0]["workload"] == specs[1]["workload"]
    with pytest.raises(UserError, match="--rate"):
        fixed_workload({"duration": 1.0}, "synthetic-tiny", max_batch=4)


# -- the command ------------------------------------------------------------------------------

BASE = ["plan", "--profile", "synthetic-tiny", "--rate", "3000", "--duration", "1",
        "--max-batch", "4", "--gpus", "1:6", "--seeds", "2", "--quiet"]


@pytest.mark.parametrize("extra, message", [
    (["--target", "high:0.99"], "--target"),
    (["--target", "top=0.99"], "unknown class"),
    (["--target", "high=0.99", "--gpus", "4:2"], "empty"),
    (["--target", "high=0.99", "--slots", ","], "empty"),
    (["--target", "high=0.99", "--policies", "nosuch"], "nosuch"),
    (["--target", "high=0.99", "--cost", "import os"], "--cost"),
    (["--target", "high=0.99", "--seeds", "0"], "--seeds"),
    ([], "no target"),
])
def test_bad_input_is_one_line_exit_2(extra, message, capsys, tmp_path):
    out = tmp_path / "out"
    assert main([*BASE, "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not out.exists()


def test_plan_command_writes_a_report_and_resumes(tmp_path, capsys):
    out = tmp_path / "plan"
    args = [*BASE, "--policies", "priority,fifo", "--target", "high=0.95", "--out", str(out)]
    assert main(args) == 0
    doc = json.loads((out / "plan.json").read_text())
    for name in ("points.csv", "front.csv", "front.png", "report.html"):
        assert (out / name).stat().st_size > 0
    per = {row["policy"]: row["gpus"] for row in doc["per_policy"]}
    assert set(per) == {"priority", "fifo"} and per["priority"] is not None
    sims = doc["simulations"]
    assert sims["run_now"] == sims["search"] and sims["reused_from_disk"] == 0
    assert sims["full_grid"] == 2 * 6 * 2
    html = (out / "report.html").read_text()
    assert "Pareto front" in html and "data:image/png;base64," in html
    # an interrupted or repeated plan reuses every simulation, and answers the same
    assert main(args) == 0
    again = json.loads((out / "plan.json").read_text())
    assert again["simulations"]["run_now"] == 0
    assert again["simulations"]["reused_from_disk"] == sims["search"]
    assert again["per_policy"] == doc["per_policy"]
    printed = capsys.readouterr().out  # --quiet: the report line, no tables
    assert "report:" in printed and "cheapest configuration per policy" not in printed


def test_plan_answer_is_checked_one_gpu_lower(tmp_path):
    from strait_sim.plan import plan

    space = build_space(["priority"], {}, [2], [4], (1, 6))
    result = plan("synthetic-tiny", {"rate": 3000, "duration": 1.0},
                  parse_targets("high=0.95"), space, seeds=2, verify_seeds=2,
                  out=Path(tmp_path))
    best = result.search.best
    assert best is not None
    (v,) = result.verification
    assert v.answer.config == best.config and v.answer.seeds == (2, 3)
    if best.config.gpus > 1:
        assert v.one_fewer.config.gpus == best.config.gpus - 1


def test_an_interrupted_plan_resumes_from_its_finished_runs(tmp_path):
    from strait_sim.plan import plan

    space = build_space(["priority", "fifo"], {}, [2], [4], (1, 6))
    args = ("synthetic-tiny", {"rate": 3000, "duration": 1.0}, parse_targets("high=0.95"),
            space)
    lines: list[str] = []

    def interrupt_after_two_rounds(line: str) -> None:
        lines.append(line)
        if sum(x.startswith("round 2:") for x in lines):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        plan(*args, seeds=2, out=tmp_path / "a", log=interrupt_after_two_rounds)
    assert not (tmp_path / "a" / "plan.json").exists()
    resumed = plan(*args, seeds=2, out=tmp_path / "a")
    fresh = plan(*args, seeds=2, out=tmp_path / "b")
    assert resumed.simulations_reused == 2 * 2  # two rounds of one config x two seeds
    assert resumed.simulations_run == fresh.simulations_run - 4
    assert [(p.config, p.verdict, p.on_time) for p in resumed.search.points] == \
        [(p.config, p.verdict, p.on_time) for p in fresh.search.points]


def test_python_api_as_documented(tmp_path):
    from strait_sim.plan import build_space, parse_targets, plan
    from strait_sim.plan.report import write_outputs

    space = build_space(["priority", "strait"], {"strait": {"hp_risk": [0.01, 0.05]}},
                        slots=[1], max_batch=[4], gpus=(1, 4))
    result = plan("synthetic-tiny", {"rate": 2000, "duration": 0.5},
                  parse_targets("high=0.9"), space, cost=lambda c: 2.5 * c.gpus, seeds=2,
                  out=str(tmp_path))
    assert {p.cost for p in result.search.points} <= {2.5 * g for g in range(1, 5)}
    files = write_outputs(result, str(tmp_path))
    assert json.loads(files["plan.json"].read_text())["space"]["gpus"] == [1, 4]


def test_families_a_policy_refuses_for_their_slots_are_skipped(tmp_path, capsys):
    """``--param orion.hp_slots=1,2 --slots 1,2``: hp_slots=2 on one slot cannot exist; the
    plan refused the whole search for it. Now that family is skipped (said in the log) and
    the others are searched; a space of only such families is still one line."""
    out = tmp_path / "plan"
    args = ["plan", "--profile", "synthetic-tiny", "--rate", "300", "--duration", "1",
            "--max-batch", "4", "--gpus", "1:2", "--seeds", "1", "--policies", "orion",
            "--param", "orion.hp_slots=1,2", "--slots", "1,2", "--target", "high=0.5",
            "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "skipped orion hp_slots=2 slots=1 max_batch=4: policy 'orion': hp_slots=2 " \
           "exceeds --slots 1" in err
    families = json.loads((out / "plan.json").read_text())["space"]["families"]
    assert families == ["orion hp_slots=1 slots=1 max_batch=4",
                        "orion hp_slots=1 slots=2 max_batch=4",
                        "orion hp_slots=2 slots=2 max_batch=4"]
    only = [*args[:-8], "--param", "orion.hp_slots=3", "--slots", "1,2", "--target",
            "high=0.5", "--out", str(tmp_path / "none")]
    assert main(only) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: policy 'orion': hp_slots=3 exceeds "
                                                "--slots 1")
    assert not (tmp_path / "none").exists()
