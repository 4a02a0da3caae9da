"""``strait-sim workload generate|show``: write a workload as a trace, inspect a trace.

``generate`` takes the same workload flags as ``run`` (see docs/workloads.md) and writes
the request stream as a strait-sim trace file (CSV, CSV.gz or Parquet), which replays
identically with ``--trace FILE``. ``show`` prints a trace's statistics and can plot its
rate over time.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from strait_sim.cli.output_options import overwrite_option
from strait_sim.cli.workload_options import workload_from_options, workload_options
from strait_sim.errors import UserError
from strait_sim.work_limit import allow_large_option

workload_app = typer.Typer(
    help="Generate workloads as trace files, and show a trace's statistics.",
    no_args_is_help=True,
)

CLOSED_LOOP_MESSAGE = (
    "a closed-loop workload cannot be written as a trace: each client's next request "
    "comes a think time after its previous one ends, which only a run (simulated or "
    "live) knows; run it with `strait-sim run --workload closed`")

# Each --bins bin is a row of the printed table and each --plot-bins bin a step of a plot
# 960 pixels wide: 10,000 is far past what either can show, and keeps the count array and
# the printing to seconds (--bins 100000000 ran for minutes, printing 10^8 rows).
MAX_BINS = 10_000


@workload_app.command("generate")
@workload_options
def generate(
    out: Path = typer.Option(..., "--out", help="Trace file to write: .csv, .csv.gz or "
                             ".parquet (written atomically)."),
    profile: str | None = typer.Option(
        None, "--profile", help="Profile bundle (name or folder) for models, deadlines "
        "and --load [default: the default profile]."),
    seed: int = typer.Option(0, "--seed", help="Random seed; same seed, same trace."),
    gpus: int = typer.Option(1, "--gpus", help="GPUs whose capacity --load refers to."),
    max_batch: int = typer.Option(8, "--max-batch",
                                  help="The max batch of the runs the trace is for: what "
                                  "--capacity-batch max means, and the most items a "
                                  "request may have."),
    overwrite: bool = overwrite_option(),
    allow_large: bool = allow_large_option(),
    *,
    workload_opts: dict,
) -> None:
    """Write the workload the flags describe as a trace file."""
    from rich.console import Console

    from strait_sim.output_folder import check_output_file
    from strait_sim.profile_bundle import load_bundle
    from strait_sim.workloads.tracefile import (
        check_output_path,
        write_trace,
        written_by_strait_sim,
    )

    check_output_path(out)
    check_output_file(out, overwrite=overwrite, ours=written_by_strait_sim(out))
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    bundle = load_bundle(profile)
    wl = workload_from_options(workload_opts, bundle, gpus=gpus, max_batch=max_batch)
    if wl.closed_loop:
        raise UserError(CLOSED_LOOP_MESSAGE)
    from strait_sim.work_limit import check_work

    check_work(wl.expected_count(), allow_large=allow_large, what="this trace", memory=False)
    desc = {"workload": wl.describe(), "seed": seed, "profile": bundle.name,
            "profile_sha256": bundle.content_hash}
    count = write_trace(out, wl.chunks(bundle, seed), description=desc)
    Console().print(f"wrote {count:,} requests ({wl.kind}) to {out}")


@workload_app.command("show")
def show(
    file: Path = typer.Argument(..., help="Trace file: strait-sim CSV/Parquet or Azure CSV "
                                "(or azure-conv / azure-code for the shipped traces)."),
    plot: Path | None = typer.Option(None, "--plot",
                                        help="Also plot the rate over time to this PNG."),
    bins: int = typer.Option(20, "--bins", help="Time bins in the rate table, 1 to "
                             f"{MAX_BINS:,} (a table row each)."),
    plot_bins: int = typer.Option(200, "--plot-bins", help="Time bins in the plot, 1 to "
                                  f"{MAX_BINS:,} (the plot is 960 pixels wide)."),
    overwrite: bool = overwrite_option(),
) -> None:
    """Print a trace's statistics: count, span, rate over time, CV, mix, HP share."""
    from strait_sim.workloads.stats import plot_rate, trace_stats

    for name, n in (("--bins", bins), ("--plot-bins", plot_bins)):
        if not 1 <= n <= MAX_BINS:
            raise UserError(f"{name} must be from 1 to {MAX_BINS:,}, got {n:,}")
    if plot is not None and plot.suffix.lower() != ".png":
        raise UserError(f"--plot {plot}: the plot is a PNG file (name it .png)")
    if plot is not None:
        from strait_sim.output_folder import check_output_file

        check_output_file(plot, overwrite=overwrite, flag="--plot")
    from strait_sim.workloads.trace import PACKAGED_TRACES, packaged_trace_path
    from strait_sim.workloads.tracefile import read_description

    if not file.exists() and str(file) in PACKAGED_TRACES:
        file = packaged_trace_path(str(file))
    st = trace_stats(file, bins=bins)
    _print_stats(st)
    made = read_description(file)
    if made and isinstance(made.get("workload"), dict):
        typer.echo(f"made by `strait-sim workload generate`: workload "
                   f"{made['workload'].get('kind')}, seed {made.get('seed')}, profile "
                   f"{made.get('profile')}")
    if plot is not None:
        plot_rate(trace_stats(file, bins=plot_bins), plot)
        typer.echo(f"plot written to {plot}")


def _print_stats(st) -> None:  # st: TraceStats
    from rich.console import Console
    from rich.table import Table

    def fmt(x: float | None, spec: str = ".4g") -> str:
        return "n/a" if x is None else format(x, spec)

    console = Console()
    kind = "Azure trace" if st.format == "azure" else "strait-sim trace"
    # The path goes on its own line, never wrapped: a table title wraps long paths mid-word.
    console.print(f"{st.label}: {kind}", soft_wrap=True, highlight=False)
    summary = Table(title="summary", show_header=False)
    summary.add_column("what")
    summary.add_column("value")
    summary.add_row("requests", f"{st.count:,}")
    summary.add_row("first / last arrival (s)", f"{st.first_s:.6g} / {st.last_s:.6g}")
    summary.add_row("span (s)", fmt(st.span_s))
    summary.add_row("mean rate (req/s)", fmt(st.mean_rate))
    summary.add_row("inter-arrival CV", fmt(st.cv, ".3f"))
    summary.add_row("HP share", "n/a (no priority column)" if st.hp_share is None
                    else f"{st.hp_share:.3%}")
    summary.add_row("mean items", "n/a (no items column: 1 each by default)"
                    if st.mean_items is None else fmt(st.mean_items))
    if st.mean_deadline_ms is not None:
        summary.add_row("deadline after arrival (ms)",
                        f"mean {st.mean_deadline_ms:.4g}, min {st.deadline_ms_min:.4g}, "
                        f"max {st.deadline_ms_max:.4g}")
    else:
        summary.add_row("deadlines", "n/a (no deadline column)")
    console.print(summary)
    if st.models:
        mix = Table(title="model mix")
        for col in ("model", "requests", "share"):
            mix.add_column(col, justify="right" if col != "model" else "left")
        for name, n in st.models.most_common():
            mix.add_row(name, f"{n:,}", f"{n / st.count:.2%}")
        console.print(mix)
    else:
        console.print("model mix: n/a (no model column; models are assigned at replay)",
                      soft_wrap=True)
    starts, rates = st.rates()
    top = float(rates.max()) if len(rates) else 0.0
    digits = _time_digits(float(starts[-1]) if len(starts) else 0.0, st.bin_s)
    table = Table(title=f"rate over time ({st.bin_s:.4g} s bins)")
    for col in ("from (s)", "requests", "req/s", ""):
        table.add_column(col, justify="right" if col else "left")
    for t0, n, r in zip(starts, st.bin_counts, rates, strict=True):
        bar = "#" * (round(30 * r / top) if top > 0 else 0)
        table.add_row(f"{t0:.{digits}g}", f"{int(n):,}", f"{r:.4g}", bar)
    console.print(table)


def _time_digits(top: float, bin_s: float) -> int:
    """Significant digits for the bins' start times (the trace's own seconds, as in its
    first / last arrival row), ``top`` the last (largest) of them: 4, plus one per power
    of ten by which the times outgrow the bin width beyond the first, so that 10 s bins
    from 1,010 s read 1010, 1019.97, ... and not 1010, 1020, ... (an Azure hour's 292 s
    bins from 0 keep 4 digits)."""
    if not (top > 0 and bin_s > 0):
        return 4
    return 4 + max(0, math.floor(math.log10(top)) - math.floor(math.log10(bin_s)) - 1)


def register(app: typer.Typer) -> None:
    app.add_typer(workload_app, name="workload")
