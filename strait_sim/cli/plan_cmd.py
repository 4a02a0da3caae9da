"""``strait-sim plan``: the cheapest configuration that meets per-class targets.

Parses the flags into targets, a search space and a cost, runs
:func:`strait_sim.plan.plan`, prints the answer per policy and (with ``--out``) writes
plan.json, points.csv, front.csv, front.png and report.html. See docs/planning.md.
"""

from __future__ import annotations

from pathlib import Path

import typer

from strait_sim.cli.workload_options import workload_options
from strait_sim.work_limit import allow_large_option


def register(app: typer.Typer) -> None:
    @app.command("plan")
    @workload_options
    def plan_command(
        target: str | None = typer.Option(
            None, "--target", help="On-time share per class, e.g. high=0.99,low=0.90."),
        p99: str | None = typer.Option(
            None, "--p99", help="p99 latency bound in ms per class, e.g. high=500."),
        mean_latency: str | None = typer.Option(
            None, "--mean-latency", help="Mean latency bound in ms per class, e.g. high=80."),
        policies: str = typer.Option("priority", "--policies",
                                     help="Policies to search, e.g. priority,strait,fifo."),
        param: list[str] = typer.Option(
            [], "--param", help="Policy parameter values to search, repeatable: "
            "POLICY.NAME=V1,V2 (e.g. strait.hp_risk=0.01,0.05)."),
        gpus: str = typer.Option("1:16", "--gpus", help="GPU counts to search: MIN:MAX or N."),
        slots: str = typer.Option("2", "--slots", help="Slots per GPU to search, e.g. 1,2."),
        max_batch: str = typer.Option("8", "--max-batch",
                                      help="Largest batch sizes to search, e.g. 1,4,8."),
        cost: str = typer.Option("gpus", "--cost", help="Cost of a configuration: an "
                                 "expression in gpus, slots, max_batch (e.g. 2.5*gpus); it "
                                 "must not decrease with gpus."),
        seeds: int = typer.Option(5, "--seeds", help="Seeds per configuration."),
        seed: int = typer.Option(0, "--seed", help="First seed (seeds are SEED..SEED+N-1)."),
        confidence: float = typer.Option(0.95, "--confidence", help="Confidence of the "
                                         "one-sided bound over seeds."),
        verify_seeds: int = typer.Option(0, "--verify-seeds", help="Check each policy's "
                                         "answer and one GPU fewer on this many fresh seeds."),
        exhaustive: bool = typer.Option(False, "--exhaustive", help="Simulate the whole "
                                        "grid instead of searching (to check a search)."),
        profile: str | None = typer.Option(
            None, "--profile", help="Bundled profile name or bundle folder."),
        no_interference: bool = typer.Option(False, "--no-interference",
                                             help="Ignore co-location slowdowns."),
        no_pcie: bool = typer.Option(False, "--no-pcie", help="Make copies free."),
        workers: int = typer.Option(1, "--workers", help="Simulations in parallel."),
        executor: str = typer.Option("local", "--executor", help="local or dask."),
        scheduler: str | None = typer.Option(None, "--scheduler",
                                             help="Dask scheduler address (with dask)."),
        out: Path | None = typer.Option(None, "--out", help="Keep every simulation (resumable) "
                                        "and write the report files into this folder."),
        force: bool = typer.Option(False, "--rerun", help="Rerun simulations already in "
                                   "--out instead of reusing them."),
        quiet: bool = typer.Option(False, "--quiet", "-q",
                                   help="No progress bar, no tables: only the line saying "
                                   "what was written, and errors."),
        allow_large: bool = allow_large_option(),
        workload_opts: dict = None,  # filled by @workload_options
    ) -> None:
        """Find the fewest GPUs (cheapest configuration) per policy that meets the targets
        with confidence over seeds, by galloping/bisection over the GPU count."""
        from strait_sim.cli.compare_cmd import parse_list
        from strait_sim.output_folder import check_output_folder
        from strait_sim.plan import plan
        from strait_sim.plan.space import (
            build_space,
            cost_from_expression,
            gpu_count_cost,
            parse_gpu_range,
            parse_int_list,
            parse_param_grid,
        )
        from strait_sim.plan.targets import parse_targets

        targets = parse_targets(target, p99, mean_latency)
        names = list(dict.fromkeys(parse_list(policies, "--policies")))
        space = build_space(names, parse_param_grid(param, names),
                            parse_int_list(slots, "--slots"),
                            parse_int_list(max_batch, "--max-batch"), parse_gpu_range(gpus))
        cost_fn = gpu_count_cost if cost.strip() == "gpus" else cost_from_expression(cost)
        if out is not None:
            check_output_folder(out, "plan", resume=True)

        def log(line: str) -> None:
            if not quiet:
                typer.echo(line, err=True)

        result = plan(profile, workload_opts or {}, targets, space, cost=cost_fn, seeds=seeds,
                      first_seed=seed, confidence=confidence,
                      interference=not no_interference, pcie=not no_pcie, workers=workers,
                      executor=executor, scheduler=scheduler, out=out, force=force,
                      verify_seeds=verify_seeds, exhaustive=exhaustive, log=log,
                      allow_large=allow_large)
        if not quiet:  # --quiet: no per-round lines, no tables (one meaning everywhere)
            _print(result)
        if out is not None:
            from strait_sim.plan.report import write_outputs

            files = write_outputs(result, out)
            typer.echo(f"report: {files['report.html']} (plan.json, points.csv, front.csv, "
                       f"front.png beside it)")


def _print(result) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.table import Table

    from strait_sim.plan.report import answers_frame, points_frame

    console = Console()
    table = Table(title="cheapest configuration per policy meeting "
                  + "; ".join(t.label() for t in result.targets))
    answers = answers_frame(result)
    for col in ("policy", "gpus", "cost", "family", "hp_on_time", "lp_on_time"):
        table.add_column(col)
    for _, row in answers.iterrows():
        table.add_row(*[_fmt(row.get(c)) for c in
                        ("policy", "gpus", "cost", "family", "hp_on_time", "lp_on_time")])
    console.print(table)
    front = points_frame(result.front)
    ftable = Table(title="Pareto front of the evaluated configurations (cost vs HP, LP on time)")
    cols = ["policy", "params", "slots", "max_batch", "gpus", "cost", "hp_on_time",
            "lp_on_time", "verdict"]
    for col in cols:
        ftable.add_column(col)
    for _, row in front.iterrows():
        ftable.add_row(*[_fmt(row[c]) for c in cols])
    console.print(ftable)
    for v in result.verification:
        fewer = (f"; {v.one_fewer.config.gpus} GPU(s): {_judged(v.one_fewer)}"
                 if v.one_fewer else "")
        console.print(f"check {v.group} on {len(result.verify_seeds)} fresh seeds: "
                      f"{v.answer.config.gpus} GPU(s): {_judged(v.answer)}{fewer}")
    console.print(f"simulations: {result.search_simulations} for the search against "
                  f"{result.grid_simulations} for the full grid "
                  f"({result.grid_simulations / max(1, result.search_simulations):.1f}x fewer); "
                  f"{result.simulations_run} run now, {result.simulations_reused} reused")


def _judged(point) -> str:  # type: ignore[no-untyped-def]
    """``misses (high on_time 0.9858 [0.9841, 0.9875], ...)``: means and both bounds."""
    parts = [f"{t.cls} {t.metric} {b.mean:.4g} [{b.lower:.4g}, {b.upper:.4g}]"
             for t, b in point.bounds.items()]
    return f"{point.verdict} ({', '.join(parts)})"


def _fmt(value) -> str:  # type: ignore[no-untyped-def]
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
