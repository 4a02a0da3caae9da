"""``strait-sim run``: simulate one workload under one policy on a profile."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from strait_sim.cli.output_options import overwrite_option
from strait_sim.cli.workload_options import workload_options
from strait_sim.work_limit import allow_large_option


def register(app: typer.Typer) -> None:
    @app.command("run")
    @workload_options
    def run(
        ctx: typer.Context,
        policy: str = typer.Option("strait", "--policy", "-p", help="Scheduling policy."),
        param: list[str] = typer.Option([], "--param", help="Policy parameter NAME=VALUE "
                                        "(repeatable; see docs/policies.md)."),
        profile: str | None = typer.Option(
            None, "--profile", help="Bundled profile name or bundle folder (default: the "
            "best bundled measurement; see `strait-sim profiles`)."),
        seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same results)."),
        out: Path | None = typer.Option(None, "--out", help="Write requests.parquet and "
                                           "summary.json into this folder."),
        gpus: int = typer.Option(1, "--gpus", help="GPUs in each simulated node."),
        nodes: int = typer.Option(1, "--nodes", help="Nodes in the simulated cluster "
                                  "(each with --gpus GPUs and its own policy)."),
        router: str = typer.Option("least-loaded", "--router", help="Cluster: how requests "
                                   "are spread over nodes (least-loaded, round-robin, "
                                   "two-choices)."),
        slots: int = typer.Option(2, "--slots", help="Concurrent execution slots per GPU."),
        max_batch: int = typer.Option(8, "--max-batch", help="Largest batch (items)."),
        no_interference: bool = typer.Option(False, "--no-interference",
                                             help="Ignore co-location slowdowns."),
        no_pcie: bool = typer.Option(False, "--no-pcie", help="Make copies free."),
        trace_out: Path | None = typer.Option(
            None, "--trace-out", help="Chrome/Perfetto trace of the timeline (JSON)."),
        quiet: bool = typer.Option(False, "--quiet", "-q",
                                   help="No progress bar, no tables: only the line saying "
                                   "what was written, and errors."),
        live: bool = typer.Option(False, "--live", help="Run on the real device instead of "
                                  "simulating (with --gpu N or --cpu)."),
        gpu: int | None = typer.Option(None, "--gpu", help="Live: CUDA device index."),
        cpu: bool = typer.Option(False, "--cpu", help="Live: run on the CPU backend."),
        force: bool = typer.Option(False, "--force", help="Live: start even if the device "
                                   "is already busy."),
        no_probe: bool = typer.Option(
            False, "--no-probe", help="Live: skip the drift probe (a few solo forwards per "
            "model before the run, compared with the profile; kept in summary.json)."),
        allow_model_mismatch: bool = typer.Option(
            False, "--allow-model-mismatch", help="Live: run even if the profile timed "
            "other definitions of the models than the zoo's (see docs/profiling.md)."),
        overwrite: bool = overwrite_option(),
        allow_large: bool = allow_large_option(),
        workload_opts: dict = None,  # filled by @workload_options
    ) -> None:
        """Simulate a workload under a policy and report per-class deadline misses."""
        from strait_sim import api
        from strait_sim.cli.progress import sim_progress
        from strait_sim.cli.render import print_summary
        from strait_sim.cli.workload_options import workload_from_options
        from strait_sim.engine.simulator import SimConfig
        from strait_sim.engine.timeline import is_timeline_file
        from strait_sim.errors import UserError
        from strait_sim.output_folder import check_output_file, check_output_folder
        from strait_sim.sweep.spec import check_system_values
        from strait_sim.work_limit import check_work, expected_requests

        check_system_values({"seed": seed, "gpus": gpus, "slots": slots,
                             "max_batch": max_batch, "nodes": nodes}, flags=True)
        if out is not None:
            check_output_folder(out, "run", overwrite=overwrite)
        if trace_out is not None:
            if out is not None and Path(trace_out).resolve().is_relative_to(
                    Path(out).resolve()):
                raise UserError(f"--trace-out {trace_out}: lies in --out {out}, which is "
                                "written (and replaced) whole; put the timeline beside it")
            check_output_file(trace_out, overwrite=overwrite, flag="--trace-out",
                              ours=is_timeline_file(trace_out))
        pol = api.make_policy(policy, **api.parse_policy_params(param, [policy])[policy])
        pol.check_system(slots=slots)
        bundle = api.load_profile(profile)
        workload = workload_from_options(workload_opts, bundle, gpus=gpus * max(nodes, 1),
                                         max_batch=max_batch)
        check_work(expected_requests(workload), allow_large=allow_large)
        if live or gpu is not None or cpu:
            from strait_sim.live.runner import LiveOptions, run_live

            if not live:
                raise UserError("--gpu and --cpu choose the device of a live run: add --live")
            if (gpu is None) == (not cpu):
                raise UserError("a live run needs exactly one of --gpu N or --cpu")
            if nodes != 1:
                raise UserError(f"live mode drives one device: --nodes must be 1, got {nodes}")
            config = SimConfig(gpus=gpus, slots=slots, max_batch=max_batch, seed=seed,
                               interference=not no_interference, pcie=not no_pcie,
                               record_timeline=trace_out is not None)
            from strait_sim.profiler.model_fingerprint import check_live_models

            for problem in check_live_models(bundle, workload.models,
                                             allow=allow_model_mismatch):
                print(f"run: warning: {problem}", file=sys.stderr)
            result = run_live(bundle, workload, pol, config,
                              LiveOptions(gpu=gpu, cpu=cpu, force=force, quiet=quiet,
                                          probe=not no_probe))
        else:
            with sim_progress(workload, enabled=not quiet) as progress:
                # with --out the results stream to disk as requests end (issue 15)
                result = api.simulate(pol, bundle, workload, seed=seed, gpus=gpus,
                                      slots=slots, max_batch=max_batch,
                                      interference=not no_interference, pcie=not no_pcie,
                                      timeline=trace_out is not None, progress=progress,
                                      out=out, overwrite=overwrite, nodes=nodes,
                                      router=router, allow_large=allow_large)
        from strait_sim.truth.compute import extrapolation_warning

        warning = extrapolation_warning(result.summary.get("truth"))
        if warning:
            print(f"run: warning: {warning}", file=sys.stderr)
        if out is not None and result.folder is None:
            result.write(out, overwrite=overwrite)
        if out is not None:
            from strait_sim.atomic import atomic_file
            from strait_sim.cli.command_line import command_line
            from strait_sim.html_report import COMMAND_FILE

            with atomic_file(Path(out) / COMMAND_FILE) as fh:
                fh.write(command_line(ctx) + "\n")
        if trace_out is not None and result.timeline is not None:
            result.write_trace(trace_out)
        if not quiet:
            print_summary(result.summary)
        if out is not None:
            typer.echo(f"results: {out}/requests.parquet, {out}/summary.json")
        if result.summary.get("executor", {}).get("interrupted"):
            raise typer.Exit(130)  # Ctrl-C: results so far are written, but say so

