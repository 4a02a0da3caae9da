"""``strait-sim compare``: several policies on identical workloads, over seeds and loads.

Each (load, seed) workload is generated once per policy from the same seed, so every
policy sees the same arrivals. Runs go through the sweep machinery
(:func:`strait_sim.sweep.executors.run_points`): ``--workers`` runs them in parallel, and
with ``--out`` each run's folder (summary.json, spec.json, requests.parquet) is kept under
``DIR/points/<key>/`` and reused when the same comparison is run again (``--rerun`` reruns).
Tables and plots are described in :mod:`strait_sim.cli.compare_report`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from strait_sim.cli.workload_options import workload_options


def parse_list(text: str, flag: str) -> list[str]:
    from strait_sim.errors import UserError

    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UserError(f"{flag} needs at least one value")
    return items


def parse_loads(text: str) -> list[float]:
    from strait_sim.errors import UserError

    out = []
    for item in parse_list(text, "--loads"):
        try:
            value = float(item)
        except ValueError:
            raise UserError(f"--loads: '{item}' is not a number") from None
        if not value > 0 or value != value or value == float("inf"):
            raise UserError(f"--loads: each load must be a finite number > 0, got {item}")
        out.append(value)
    return out


def parse_params(items: list[str], policies: list[str]) -> dict[str, dict]:
    """``--param strait.safety=1.2`` (repeatable) into {policy: {name: value}}; values are
    read as JSON (numbers, true/false, null, objects) or else kept as text."""
    from strait_sim.errors import UserError

    out: dict[str, dict] = {p: {} for p in policies}
    for item in items:
        target, eq, raw = item.partition("=")
        policy, dot, name = target.partition(".")
        if not eq or not dot or not policy or not name:
            raise UserError(f"--param '{item}': expected POLICY.NAME=VALUE, e.g. "
                            f"strait.safety=1.2")
        if policy not in out:
            raise UserError(f"--param '{item}': policy '{policy}' is not in --policies "
                            f"({', '.join(policies)})")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[policy][name] = value
    return out


def register(app: typer.Typer) -> None:
    @app.command("compare")
    @workload_options
    def compare(
        ctx: typer.Context,
        policies: str = typer.Option(..., "--policies", help="Comma-separated policies, "
                                     "e.g. strait,reef,priority (see `strait-sim policies`)."),
        loads: str | None = typer.Option(None, "--loads", help="Sweep the offered load, "
                                         "e.g. 0.5,0.7,0.9,1.1 (each run uses --load L)."),
        seeds: int = typer.Option(3, "--seeds", help="Seeds per policy and load."),
        seed: int = typer.Option(0, "--seed", help="First seed (seeds are SEED..SEED+N-1)."),
        profile: str | None = typer.Option(
            None, "--profile", help="Bundled profile name or bundle folder."),
        gpus: int = typer.Option(1, "--gpus", help="GPUs in the simulated node."),
        slots: int = typer.Option(2, "--slots", help="Concurrent execution slots per GPU."),
        max_batch: int = typer.Option(8, "--max-batch", help="Largest batch (items)."),
        no_interference: bool = typer.Option(False, "--no-interference",
                                             help="Ignore co-location slowdowns."),
        no_pcie: bool = typer.Option(False, "--no-pcie", help="Make copies free."),
        param: list[str] = typer.Option([], "--param", help="Policy parameter, repeatable: "
                                        "POLICY.NAME=VALUE (e.g. strait.hp_risk=0.2)."),
        reference: str | None = typer.Option(
            None, "--reference", help="Policy the others are compared with, in percentage "
            "points (default: strait when listed, else the first)."),
        out: Path | None = typer.Option(None, "--out", help="Keep every run and write "
                                        "comparison.csv/.md and plots into this folder."),
        workers: int = typer.Option(1, "--workers", help="Runs in parallel (processes)."),
        rerun: bool = typer.Option(False, "--rerun", help="Rerun points already in --out "
                                   "instead of reusing them."),
        quiet: bool = typer.Option(False, "--quiet", "-q",
                                   help="No progress bar, no tables: only the line saying "
                                   "what was written, and errors."),
        workload_opts: dict = None,  # filled by @workload_options
    ) -> None:
        """Compare policies on identical workloads: violations per class with confidence
        intervals over seeds, latency percentiles, goodput, drops, busy time, fairness."""
        from strait_sim import api
        from strait_sim.atomic import check_writable_parent

        names = list(dict.fromkeys(parse_list(policies, "--policies")))
        params = api.parse_policy_params(param, names) if param else {}
        if out is not None:
            check_writable_parent(out)
        result = api.compare(names, profile, loads=None if loads is None else
                             parse_loads(loads), seeds=seeds, seed=seed, params=params,
                             reference=reference, gpus=gpus, slots=slots,
                             max_batch=max_batch, interference=not no_interference,
                             pcie=not no_pcie, out=out, workers=workers, rerun=rerun,
                             progress=not quiet,
                             **{k: v for k, v in (workload_opts or {}).items()
                                if v is not None})
        records = [(*k, s) for k, s in zip(result.keys, result.summaries, strict=True)]
        _report(records, result.folders, names, result.reference, result.loads, out,
                sweep=result.swept, quiet=quiet)
        if out is not None:
            from strait_sim.cli.command_line import command_line
            from strait_sim.html_report import COMMAND_FILE

            rep_write_text(command_line(ctx) + "\n", out / COMMAND_FILE)


def rep_write_text(text: str, path: Path) -> None:
    from strait_sim.cli.compare_report import write_text

    write_text(text, path)


def _report(records: list, folders: list, names: list[str], ref: str,
            load_list: list, out: Path | None, *, sweep: bool, quiet: bool = False) -> None:
    from strait_sim.cli import compare_report as rep

    runs = rep.runs_frame(records)
    table = rep.comparison_table(runs, names)
    ref_table = rep.reference_table(runs, ref, names)
    text = rep.comparison_markdown(table)
    ref_text = rep.reference_markdown(ref_table)
    from rich.console import Console

    console = Console()
    if not quiet:
        for rich_table in rep.terminal_tables(table, ref_table):
            console.print(rich_table)
    if out is None:
        return
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    runs = runs.assign(folder=[str(f) if f is not None else None for f in folders])
    rep.write_csv(runs, out / "runs.csv")
    rep.write_csv(table, out / "comparison.csv")
    rep.write_csv(ref_table, out / "reference.csv")
    rep.write_text("# strait-sim compare\n\n" + text +
                   (f"\n## {ref} against each policy (percentage points, paired over "
                    f"seeds)\n\n" + ref_text if ref_text else ""),
                   out / "comparison.md")
    written = ["runs.csv", "comparison.csv", "reference.csv", "comparison.md"]
    if sweep:
        rep.plot_violation_vs_load(table, out / "violation_vs_load.png")
        written.append("violation_vs_load.png")
    for load in load_list:
        lat: dict = {}
        for name in names:
            parts = [pd.read_parquet(Path(f) / "requests.parquet",
                                     columns=["priority", "status", "arrival_s", "finish_s"])
                     for (ld, pol, _s, _sum), f in zip(records, folders, strict=True)
                     if pol == name and ld == load and f is not None
                     and (Path(f) / "requests.parquet").is_file()]
            if parts:
                lat[name] = rep.completed_latencies(pd.concat(parts, ignore_index=True))
        if lat:
            fname = "latency_cdf.png" if not sweep else f"latency_cdf_load{load:g}.png"
            title = "all seeds pooled" + ("" if load is None else f", load {load:g}")
            rep.plot_latency_cdfs(lat, out / fname, title)
            written.append(fname)
    typer.echo(f"wrote {', '.join(written)} and {len(records)} run folder(s) under {out}")
