"""``strait-sim sweep FILE`` and ``strait-sim sweep report DIR``.

``sweep`` is a command group with two commands, ``run`` and ``report``; a first argument
that is not one of them is taken as the experiment file of ``run``, so that
``strait-sim sweep FILE`` works as the short form of ``strait-sim sweep run FILE``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup

from strait_sim.work_limit import allow_large_option


class DefaultRunGroup(TyperGroup):
    """A group whose first argument, when not a command name, goes to ``run``."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
        if not args:  # help, without the NoArgsIsHelpError that main() would not catch
            typer.echo(ctx.get_help())
            ctx.exit(0)
        if args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


MAX_ROWS = 60  # rows of the terminal table; the report's CSV has them all

sweep_app = typer.Typer(cls=DefaultRunGroup,
                        help="Run a grid of simulations from an experiment file "
                        "(`strait-sim sweep FILE`), or report on one (`sweep report DIR`).")


@sweep_app.command("run")
def run(
    file: Path = typer.Argument(..., help="Experiment file (TOML); see docs/sweeps.md."),
    workers: int = typer.Option(1, "--workers", "-w", help="Parallel worker processes "
                                "(local pool) or local Dask workers."),
    executor: str = typer.Option("local", "--executor", help="local (process pool) or dask."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address "
                                         "(tcp://HOST:PORT); without it, --executor dask "
                                         "starts a local Dask cluster."),
    rerun: bool = typer.Option(False, "--rerun", help="Rerun points that are already done "
                               "instead of reusing them."),
    out: Path | None = typer.Option(None, "--out", help="Sweep folder (default: the experiment "
                                    "file's out setting)."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                                help="No progress bar, no tables: only the line saying "
                                "what was written, and errors."),
    allow_large: bool = allow_large_option(),
) -> None:
    """Run every point of an experiment's grid; finished points are reused."""
    from strait_sim.sweep.experiment_file import load_experiment
    from strait_sim.sweep.runner import run_experiment

    exp = load_experiment(file)
    result = run_experiment(exp, workers=workers, executor=executor, scheduler=scheduler,
                            force=rerun, out=out, progress=not quiet,
                            allow_large=allow_large)
    failed = result.failed
    ran = len(result.outcomes) - result.skipped
    typer.echo(f"{len(result.outcomes)} points: {ran - len(failed)} run, "
               f"{result.skipped} already done, {len(failed)} failed -> {result.table}")
    for outcome in failed[:10]:
        typer.echo(f"  failed {outcome.key} ({outcome.spec['policy']}): {outcome.error}",
                   err=True)
    if len(failed) > 10:
        typer.echo(f"  ... and {len(failed) - 10} more (see {result.out}/points/*.error.json)",
                   err=True)
    if not quiet and len(failed) < len(result.outcomes):
        from strait_sim.sweep.report import summarize_sweep
        from strait_sim.sweep.table import results_frame

        _print_report(summarize_sweep(results_frame(result.outcomes),
                                      {"metrics": exp.metrics, "grid_keys": exp.grid_keys}))
    if failed:
        raise typer.Exit(1)


@sweep_app.command("report")
def report(
    folder: Path = typer.Argument(..., help="A sweep folder (holds results.parquet)."),
    metric: list[str] | None = typer.Option(None, "--metric", "-m", help="Metric to report "
                                             "(repeatable; default: the experiment's)."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                                help="No progress bar, no tables: only the line saying "
                                "what was written, and errors."),
) -> None:
    """Tables and plots (mean over seeds with 95% CI) into DIR/report/."""
    from strait_sim.sweep.report import write_report

    rep = write_report(folder, metric or None)
    if not quiet:
        _print_report(rep)
    typer.echo(f"report: {rep.folder}/summary.csv"
               + (f" and {len(rep.metrics)} plot(s) vs {rep.x}" if rep.x else ""))


def _print_report(rep) -> None:  # type: ignore[no-untyped-def]
    import math

    from rich.console import Console
    from rich.table import Table

    from strait_sim.sweep.report import metric_info, short_header

    table = Table(title="mean over seeds (95% bootstrap interval, within the possible "
                  "range)")
    cols = [c for c in ([rep.x] if rep.x else []) + rep.series + ["class", "seeds"]]
    for c in cols:
        table.add_column(c)
    for m in rep.metrics:
        table.add_column(short_header(m), justify="right")
    shown = rep.table.head(MAX_ROWS)
    for _, row in shown.iterrows():
        cells = [str(row[c]) for c in cols]
        for m in rep.metrics:
            scale = metric_info(m)[1]
            mean, lo, hi = (row[f"{m}_mean"], row.get(f"{m}_lo", math.nan),
                            row.get(f"{m}_hi", math.nan))
            text = "-" if math.isnan(mean) else f"{scale * mean:.3g}"
            if not (math.isnan(lo) or math.isnan(hi)) and hi > lo:
                text += f" ({scale * lo:.3g}–{scale * hi:.3g})"
            cells.append(text)
        table.add_row(*cells)
    Console().print(table)
    if len(rep.table) > MAX_ROWS:
        typer.echo(f"... {len(rep.table) - MAX_ROWS} more rows: `strait-sim sweep report DIR` "
                   "writes them all to DIR/report/summary.csv")
    if rep.failed:
        typer.echo(f"{rep.failed} failed point(s) left out")


def register(app: typer.Typer) -> None:
    app.add_typer(sweep_app, name="sweep")
