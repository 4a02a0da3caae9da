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
from strait_sim.work_limit import allow_large_option


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
        allow_large: bool = allow_large_option(),
        quiet: bool = typer.Option(False, "--quiet", "-q",
                                   help="No progress bar, no tables: only the line saying "
                                   "what was written, and errors."),
        workload_opts: dict = None,  # filled by @workload_options
    ) -> None:
        """Compare policies on identical workloads: violations per class with confidence
        intervals over seeds, latency percentiles, goodput, drops, busy time, fairness."""
        from strait_sim import api
        from strait_sim.cli.command_line import command_line
        from strait_sim.output_folder import check_output_folder
        from strait_sim.sweep.executors import check_run_options
        from strait_sim.sweep.spec import check_system_values

        names = list(dict.fromkeys(parse_list(policies, "--policies")))
        params = api.parse_policy_params(param, names) if param else {}
        check_run_options(workers)
        check_system_values({"seed": seed, "gpus": gpus, "slots": slots,
                             "max_batch": max_batch}, flags=True)
        if out is not None:
            check_output_folder(out, "compare", resume=True)
        wl = {k: v for k, v in (workload_opts or {}).items() if v is not None}
        load_list = [None] if loads is None else list(parse_loads(loads))
        _check_work(wl, load_list, profile, gpus, max_batch, allow_large,
                    max(1, min(workers, len(names) * max(seeds, 1) * len(load_list))))
        result = api.compare(names, profile, loads=None if loads is None else
                             parse_loads(loads), seeds=seeds, seed=seed, params=params,
                             reference=reference, gpus=gpus, slots=slots,
                             max_batch=max_batch, interference=not no_interference,
                             pcie=not no_pcie, out=out, workers=workers, rerun=rerun,
                             progress=not quiet, command=command_line(ctx),
                             allow_large=allow_large,
                             **{k: v for k, v in (workload_opts or {}).items()
                                if v is not None})
        _report(result, quiet=quiet)


def _check_work(wl: dict, load_list: list, profile: str | None, gpus: int, max_batch: int,
                allow_large: bool, runs_at_once: int) -> None:
    """The work limit, checked on the largest run (highest load) before any run starts."""
    from strait_sim.cli.workload_options import workload_from_options
    from strait_sim.profile_bundle import load_bundle
    from strait_sim.work_limit import check_work, expected_requests

    if allow_large or (any(ld is not None for ld in load_list) and ("rate" in wl
                                                                    or "load" in wl)):
        return  # (the second: api.compare says --loads and --rate conflict)
    top = dict(wl)
    loads = [ld for ld in load_list if ld is not None]
    if loads:
        top["load"] = max(loads)
    workload = workload_from_options(top, load_bundle(profile), gpus=gpus, max_batch=max_batch)
    check_work(expected_requests(workload), runs_at_once=runs_at_once, what="each run")


def _report(result, *, quiet: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Print the tables (unless quiet) and the line saying what was written."""
    from rich.console import Console

    from strait_sim.cli import compare_report as rep

    if not quiet:
        console = Console()
        for rich_table in rep.terminal_tables(result.table, result.reference_table):
            console.print(rich_table)
    if result.out is not None:
        typer.echo(f"wrote {', '.join(result.written)} and {len(result.summaries)} run "
                   f"folder(s) under {result.out}")
