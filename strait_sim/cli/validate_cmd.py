"""``strait-sim validate``: run one workload live and in simulation, report the gap.

``strait-sim validate --live --cpu --policy fifo --rate 100 --duration 20 --out DIR`` runs
the workload on the device (the same policy class, a fresh object per run), then
simulates it on the profile of that same device, and writes DIR/report.md,
DIR/report.json, DIR/cdf_<class>.png and both runs (DIR/live, DIR/sim).
``strait-sim validate --report DIR`` re-renders a stored comparison.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from strait_sim.cli.output_options import overwrite_option
from strait_sim.cli.workload_options import workload_options
from strait_sim.work_limit import allow_large_option


def register(app: typer.Typer) -> None:
    @app.command("validate")
    @workload_options
    def validate(
        ctx: typer.Context,
        live: bool = typer.Option(False, "--live", help="Run the workload live and in "
                                  "simulation and compare (with --gpu N or --cpu)."),
        report: Path | None = typer.Option(
            None, "--report", help="Re-render the report of a stored comparison folder."),
        gpu: int | None = typer.Option(None, "--gpu", help="Live: CUDA device index."),
        cpu: bool = typer.Option(False, "--cpu", help="Live: run on the CPU backend."),
        policy: str = typer.Option("strait", "--policy", "-p", help="Scheduling policy."),
        param: list[str] = typer.Option([], "--param", help="Policy parameter NAME=VALUE "
                                        "or POLICY.NAME=VALUE (repeatable)."),
        profile: str | None = typer.Option(
            None, "--profile", help="Profile of the live device (name or folder; default: "
            "the bundled measured profile of that kind of device)."),
        seed: int = typer.Option(0, "--seed", help="Random seed (workload and simulation)."),
        out: Path | None = typer.Option(None, "--out", help="Folder for the comparison."),
        slots: int = typer.Option(2, "--slots", help="Concurrent execution slots (streams)."),
        max_batch: int = typer.Option(8, "--max-batch", help="Largest batch (items)."),
        no_interference: bool = typer.Option(False, "--no-interference",
                                             help="Simulate without co-location slowdowns."),
        no_pcie: bool = typer.Option(False, "--no-pcie", help="Simulate free copies."),
        margin: float = typer.Option(0.10, "--margin", help="TOST equivalence margin, as a "
                                     "fraction of the simulated mean."),
        alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the tests."),
        force: bool = typer.Option(False, "--force", help="Start even if the device is busy."),
        allow_model_mismatch: bool = typer.Option(
            False, "--allow-model-mismatch", help="Run even if the profile timed other "
            "definitions of the models than the zoo's (see docs/profiling.md)."),
        overwrite: bool = overwrite_option(),
        allow_large: bool = allow_large_option(),
        busy_threshold: float | None = typer.Option(
            None, "--busy-threshold", help="Busy above this (CPU: load per core, default "
            "0.5; GPU: utilisation fraction, default 0.1)."),
        quiet: bool = typer.Option(False, "--quiet", "-q",
                                   help="No progress bar, no tables: only the line saying "
                                   "what was written, and errors."),
        repeats: int = typer.Option(1, "--repeats", help="Live and simulated runs per cell "
                                    "(seeds seed..seed+K-1); K >= 2 gives intervals from "
                                    "independent replications (docs/validation.md)."),
        loads: str | None = typer.Option(
            None, "--loads", help="Offered loads L1,L2,... (as --load): one cell each, "
            "for the error-against-load curve; --policy may then list several policies."),
        no_probe: bool = typer.Option(False, "--no-probe", help="Skip the drift probe "
                                      "(a few seconds of solo runs before the validation)."),
        recalibrate: bool = typer.Option(
            False, "--recalibrate", help="Re-measure solo times (and a few pairs) now, "
            "write the fresh profile beside the results and validate against it."),
        workload_opts: dict = None,  # filled by @workload_options
    ) -> None:
        """Compare a live run with its simulation: latency percentiles, violations, KS, TOST;
        with --repeats/--loads, a replicated study of the error against load."""
        from strait_sim.errors import UserError
        from strait_sim.live.report import rerender
        from strait_sim.live.study import check_repeats, parse_loads

        check_repeats(repeats)
        load_list = parse_loads(loads)

        if not 0 < margin < 1:
            raise UserError(f"--margin must be between 0 and 1, got {margin}")
        if not 0 < alpha < 0.5:
            raise UserError(f"--alpha must be between 0 and 0.5, got {alpha}")
        if report is not None:
            if live:
                raise UserError("--report re-renders a stored comparison; it does not take "
                                "--live")
            from strait_sim.live.study import check_study_finished

            check_study_finished(report)  # an unfinished study: how to finish it
            if (report / "study.json").is_file():
                study = _rerender_study(report)
                if not quiet:
                    typer.echo((report / "study.md").read_text())
                typer.echo(f"study: {report}/study.md ({len(study['cells'])} policies)")
                return
            result = rerender(report, margin=margin, alpha=alpha)
            if not quiet:
                _print(result)
            typer.echo(f"report: {report}/report.md")
            return
        if not live:
            raise UserError("validate needs --live (with --gpu N or --cpu) to run a "
                            "comparison, or --report DIR to re-render one")
        if (gpu is None) == (not cpu):
            raise UserError("a live validation needs exactly one of --gpu N or --cpu")
        if out is None:
            raise UserError("--out DIR is required: where to write the comparison")
        if load_list and (workload_opts or {}).get("rate") is not None:
            raise UserError("--loads sets the load of each cell; it does not take --rate")
        if load_list and (workload_opts or {}).get("load") is not None:
            raise UserError("--loads sets the load of each cell; it does not take --load")
        policies = [p.strip() for p in policy.split(",") if p.strip()]
        if len(policies) > 1 and not (load_list or repeats > 1):
            raise UserError("several policies need a study: add --loads and/or --repeats")
        from strait_sim import api
        from strait_sim.atomic import check_writable_parent
        from strait_sim.sweep.spec import check_system_values

        check_writable_parent(out)
        check_system_values({"seed": seed, "slots": slots, "max_batch": max_batch}, flags=True)
        parsed = api.parse_policy_params(param, policies)
        for p in policies:  # a bad policy fails before the probe and the device
            api.make_policy(p, **dict(parsed[p])).check_system(slots=slots)
        from strait_sim.output_folder import check_output_folder

        study = bool(load_list or repeats > 1)
        # before the probe: a refused folder costs nothing and is left untouched. A study
        # resumes (its finished cells are reused), so an earlier study of its own, even an
        # interrupted one without study.json, is continued rather than refused.
        if study:
            check_output_folder(out, "validation-study", resume=True)
        else:
            check_output_folder(out, "validation", overwrite=overwrite)
        fresh_dir = out.parent / f".{out.name}.recalibrated-profile" if recalibrate else None
        with _study_stop_line(study, out=out, policies=policies, loads=load_list,
                              repeats=repeats):
            drift = _drift_step(live_kind="cpu" if cpu else "cuda", gpu=gpu, profile=profile,
                                probe=not no_probe, recalibrate_into=fresh_dir, force=force,
                                quiet=quiet, workload_opts=workload_opts,
                                max_batch=max_batch)
            if fresh_dir is not None:
                profile = str(fresh_dir)
            try:
                _run_either(study, live_kind="cpu" if cpu else "cuda", gpu=gpu,
                            policies=policies, params=param, profile=profile, seed=seed,
                            out=out, slots=slots, max_batch=max_batch,
                            interference=not no_interference, pcie=not no_pcie,
                            margin=margin, alpha=alpha, force=force,
                            busy_threshold=busy_threshold, quiet=quiet, overwrite=overwrite,
                            allow_large=allow_large, workload_opts=workload_opts,
                            command=_command_line(ctx),
                            allow_model_mismatch=allow_model_mismatch, loads=load_list,
                            repeats=repeats)
            finally:
                _keep_drift(out, drift, fresh_dir, attach=not study)


@contextmanager
def _study_stop_line(study: bool, *, out: Path, policies: list[str],
                     loads: list[float] | None, repeats: int) -> Iterator[None]:
    """A study stopped by Ctrl-C anywhere (a cell's live run or simulation, the model
    preparation, the drift probe, between cells) says, in one line, how many cells are
    complete and that the same command resumes it, then exits 130. The command must catch
    KeyboardInterrupt itself: typer turns an uncaught one into a silent exit 130."""
    import sys

    from strait_sim.live.study import StudyInterrupted, progress_line

    try:
        yield
    except KeyboardInterrupt as exc:
        if not study:
            raise
        line = str(exc) if isinstance(exc, StudyInterrupted) else progress_line(
            out, policies, loads, repeats)
        print(f"interrupted: {line}", file=sys.stderr)
        raise typer.Exit(130) from None


def _run_either(study: bool, **kw: object) -> None:
    if study:
        _run_study(**kw)  # type: ignore[arg-type]
        return
    policies = kw.pop("policies")
    kw.pop("loads")
    kw.pop("repeats")
    _run_validation(policy=policies[0], **kw)  # type: ignore[arg-type,index]


def _keep_drift(out: Path, drift: object, fresh_dir: Path | None, *, attach: bool) -> None:
    """Put the drift probe's result (and the recalibrated profile) into the results."""
    import json
    import os
    from dataclasses import asdict

    if not out.is_dir():  # stopped before the results: this run's profile has no home
        if fresh_dir is not None:
            import shutil

            shutil.rmtree(fresh_dir, ignore_errors=True)
        return
    from strait_sim.output_folder import note_written

    if drift is not None:
        (out / "drift.json").write_text(json.dumps(asdict(drift), indent=1) + "\n")
        note_written(out, ["drift.json"])  # the tool's: a later --overwrite replaces it
        if attach and (out / "report.json").is_file():
            from strait_sim.live.report import attach_drift

            attach_drift(out, asdict(drift), drift.message())  # type: ignore[attr-defined]
    if fresh_dir is not None and fresh_dir.is_dir():
        os.replace(fresh_dir, out / "recalibrated-profile")
        note_written(out, ["recalibrated-profile"])


def _run_validation(*, live_kind: str, gpu: int | None, policy: str, params: list[str],
                    profile: str | None, seed: int, out: Path, slots: int, max_batch: int,
                    interference: bool, pcie: bool, margin: float, alpha: float, force: bool,
                    busy_threshold: float | None, quiet: bool, workload_opts: dict,
                    overwrite: bool = False, allow_large: bool = False,
                    command: str, allow_model_mismatch: bool = False) -> None:
    from strait_sim import api
    from strait_sim.output_folder import check_output_folder
    from strait_sim.sweep.spec import check_system_values

    check_system_values({"seed": seed, "slots": slots, "max_batch": max_batch}, flags=True)
    check_output_folder(out, "validation", overwrite=overwrite)
    report = api.validate(policy, "cpu" if live_kind == "cpu" else int(gpu or 0), out=out,
                          profile=profile,
                          params=api.parse_policy_params(params, [policy])[policy],
                          seed=seed, slots=slots, max_batch=max_batch,
                          interference=interference, pcie=pcie, margin=margin, alpha=alpha,
                          force=force, busy_threshold=busy_threshold, quiet=quiet,
                          command=command, allow_model_mismatch=allow_model_mismatch,
                          allow_large=allow_large, overwrite=overwrite,
                          **{k: v for k, v in (workload_opts or {}).items() if v is not None})
    if not quiet:
        _print(report)
    typer.echo(f"report: {out}/report.md")


def _run_study(*, live_kind: str, gpu: int | None, policies: list[str], params: list[str],
               profile: str | None, seed: int, out: Path, slots: int, max_batch: int,
               interference: bool, pcie: bool, margin: float, alpha: float, force: bool,
               busy_threshold: float | None, quiet: bool, workload_opts: dict, command: str,
               allow_model_mismatch: bool, loads: list[float] | None, repeats: int,
               overwrite: bool = False, allow_large: bool = False) -> None:
    import sys

    from strait_sim import api
    from strait_sim.atomic import check_writable_parent
    from strait_sim.live.study import run_study
    from strait_sim.output_folder import open_resumable_folder

    check_writable_parent(out)
    parsed = api.parse_policy_params(params, policies)
    for p in policies:
        api.make_policy(p, **dict(parsed[p])).check_system(slots=slots)  # before the device
    base = {k: v for k, v in (workload_opts or {}).items() if v is not None}

    def cell(*, policy: str, out: Path, seed: int, **load: float) -> None:
        # overwrite: the cell folders are the study's own; a cell whose live run was
        # interrupted holds an earlier validation that its rerun must replace
        api.validate(policy, "cpu" if live_kind == "cpu" else int(gpu or 0), out=out,
                     profile=profile, params=parsed[policy], seed=seed, slots=slots,
                     max_batch=max_batch, interference=interference, pcie=pcie,
                     margin=margin, alpha=alpha, force=force, busy_threshold=busy_threshold,
                     quiet=True, command=command, allow_large=allow_large, overwrite=True,
                     allow_model_mismatch=allow_model_mismatch, **{**base, **load})

    # marked before the first cell: an interrupted study (no study.json yet) is then
    # recognised as the tool's by the next run, which resumes it
    open_resumable_folder(out, "validation-study")
    # a Ctrl-C (StudyInterrupted or any other) is reported by _study_stop_line
    study = run_study(policies=policies, loads=loads, repeats=repeats, seed=seed, out=out,
                      run_cell=cell, quiet=quiet,
                      log=(lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr)))
    (out / "command.txt").write_text(command + "\n")
    if not quiet:
        typer.echo((out / "study.md").read_text())
        typer.echo(f"study: {out}/study.md ({len(study['cells'])} policies)")


def _rerender_study(folder: Path) -> dict:
    """Re-summarise a stored study from its cells (every cell must be there): study.json,
    study.md and the plots are rewritten; nothing runs on a device."""
    from strait_sim.live.study import stored_study, write_study

    study = stored_study(folder)
    write_study(folder, study)
    return study


def _drift_step(*, live_kind: str, gpu: int | None, profile: str | None, probe: bool,
                recalibrate_into: Path | None, force: bool, quiet: bool,
                workload_opts: dict | None, max_batch: int) -> object:
    """Probe the device against its profile before validating, or re-measure it into
    ``recalibrate_into`` (--recalibrate); return the probe's DriftReport (or None)."""
    import sys

    from strait_sim import api
    from strait_sim.live.busy_check import check_device_idle
    from strait_sim.live.drift import probe_and_report, recalibrate_profile

    if not probe and recalibrate_into is None:
        return None
    if live_kind == "cuda":
        from strait_sim.profiler.backends import check_gpu

        check_gpu(int(gpu or 0))  # no GPU: say so first
    bundle = api.load_profile(profile if profile is not None
                              else api.default_device_profile(live_kind))
    models = None
    if workload_opts and workload_opts.get("models"):
        models = [m.strip() for m in str(workload_opts["models"]).split(",") if m.strip()]
    log = None if quiet else (lambda m: print(m, file=sys.stderr))
    check_device_idle(live_kind, gpu, force=force)  # probing a busy device says nothing
    drift = probe_and_report(bundle, live_kind=live_kind, gpu=gpu, out=None, models=models,
                             max_batch=max_batch, log=log) if probe else None
    if recalibrate_into is not None:
        recalibrate_profile(bundle, live_kind=live_kind, gpu=gpu, out=recalibrate_into,
                            models=models, max_batch=max_batch, force=force, log=log)
    return drift


def _command_line(ctx: typer.Context) -> str:
    from strait_sim.cli.command_line import command_line

    return command_line(ctx)


def _print(report: dict) -> None:
    """Two tables, each readable at 80 columns: latency, then deadline violations."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    def ms(v):
        return "-" if v is None else f"{v:.2f}"

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"

    def signed(v):
        return "-" if v is None else f"{100 * v:+.1f}"

    title = (f"{report['setup']['policy']}: live vs simulated "
             f"({report['setup']['device']})")
    lat = Table(title=f"{title}: latency of completed requests", box=box.SIMPLE_HEAD,
                title_justify="left", caption_justify="left",
                caption="KS p: two-sample Kolmogorov-Smirnov p-value; TOST: equivalence "
                f"of the means within ±{100 * report.get('margin', 0.1):g}% of the "
                "simulated mean")
    for col in ("class", "p50 live ms", "p50 sim ms", "p99 live ms", "p99 sim ms",
                "KS p", "TOST"):
        lat.add_column(col, justify="left" if col in ("class", "TOST") else "right")
    viol = Table(title=f"{title}: deadline violations", box=box.SIMPLE_HEAD,
                 title_justify="left", caption_justify="left",
                 caption="sim − live in percentage points: positive means the simulator "
                 "predicts more violations than the device had")
    for col in ("class", "violated live %", "violated sim %", "sim − live pp"):
        viol.add_column(col, justify="left" if col == "class" else "right")
    for cls, c in report["classes"].items():
        lt, v, k, t = c["latency"], c["violation"], c["ks"], c["tost"]
        lat.add_row(cls, ms(lt["p50"]["live_ms"]), ms(lt["p50"]["sim_ms"]),
                    ms(lt["p99"]["live_ms"]), ms(lt["p99"]["sim_ms"]),
                    "-" if k["pvalue"] is None else f"{k['pvalue']:.3g}",
                    {True: "equivalent", False: "not equiv.", None: "-"}[t.get("equivalent")])
        viol.add_row(cls, pct(v["live"]), pct(v["sim"]),
                     "-" if v["diff_pp"] is None else f"{v['diff_pp']:+.1f}")
    pred = Table(title=f"{title}: the policy's prediction of its service time",
                 box=box.SIMPLE_HEAD, title_justify="left", caption_justify="left",
                 caption="MAPE of predicted_ms against dispatch-to-D2H-end; bias = mean "
                 "(predicted - observed) over the mean observed service")
    for col in ("class", "live n", "live MAPE", "live bias", "sim n", "sim MAPE", "sim bias"):
        pred.add_column(col, justify="left" if col == "class" else "right")
    predicts = False
    for cls, c in report["classes"].items():
        pl, ps = c.get("prediction", {}).get("live", {}), c.get("prediction", {}).get("sim", {})
        predicts = predicts or bool(pl.get("predictions") or ps.get("predictions"))
        pred.add_row(cls, str(pl.get("predictions", 0)), pct(pl.get("mape")),
                     signed(pl.get("bias_share")), str(ps.get("predictions", 0)),
                     pct(ps.get("mape")), signed(ps.get("bias_share")))
    console = Console()
    console.print(lat)
    console.print(viol)
    if predicts:
        console.print(pred)
    for w in report["setup"].get("warnings", []):
        console.print(f"warning: {w}")
