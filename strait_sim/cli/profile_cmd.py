"""``strait-sim profile``: measure a device into a profile bundle; ``profile show``.

``strait-sim profile --gpu 0`` (or ``--cpu``) measures; ``strait-sim profile show BUNDLE``
prints the digest and draws the plots. The measuring options live on the group's
callback so that the command the issue names, ``strait-sim profile --gpu 0``, works as
written. See docs/profiling.md.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import typer

from strait_sim.cli.output_options import overwrite_option
from strait_sim.errors import UserError

CPU_DEFAULT_BATCHES = "1,2,4"
GPU_DEFAULT_BATCHES = "1,2,4,8,16,32"


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise UserError(f"{flag}: expected integers >= 1, got {text!r}")
    return tuple(sorted(set(vals)))


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{flag}: expected comma-separated numbers, got {text!r}") from None
    if not vals or any(not 0 <= v < 1 for v in vals):
        raise UserError(f"{flag}: expected fractions in [0, 1), got {text!r}")
    return tuple(sorted(set(vals)))


# The largest copy --max-transfer-mib may ask for: a batch's input is megabytes, and up to
# four such copies at once need their size in pinned host memory each (1e30 reached torch
# as an overflow after solo and pairs were measured).
MAX_TRANSFER_MIB = 16_384


def _check_numbers(*, seed: int, budgets: dict[str, float], warmup: int,
                   counts: dict[str, int | None], max_transfer_mib: float | None) -> None:
    """Every numeric flag in its range, in one line naming the flag and the range, before
    anything is measured or any folder is made.

    Why: out of range, these did not fail where they are read. A negative budget meant
    "no limit" (as 0 does) and a negative --warmup no warm-up, silently; a negative seed
    went into profile.json and failed in numpy once pairs began, a huge one and a
    non-finite --max-transfer-mib as tracebacks. ``counts`` are None where the flag was
    left out (the device's default applies).
    """
    from strait_sim.sweep.spec import check_system_values

    check_system_values({"seed": seed}, flags=True)  # the range run and compare use
    for flag, seconds in budgets.items():
        if not (math.isfinite(seconds) and seconds >= 0):
            raise UserError(f"{flag} must be a finite number of seconds >= 0 (0: no limit), "
                            f"got {seconds}")
    if warmup < 0:
        raise UserError(f"--warmup must be >= 0 (0: no extra warm-up), got {warmup}")
    for flag, value in counts.items():
        if value is not None and value < 1:
            raise UserError(f"{flag} must be >= 1, got {value}")
    threads, cores = counts.get("--threads-per-stream"), os.cpu_count() or 1
    if threads is not None and threads > cores:  # more only oversubscribes (or cannot start)
        raise UserError(f"--threads-per-stream must be at most this machine's {cores} "
                        f"core(s), got {threads}")
    if max_transfer_mib is not None and not (math.isfinite(max_transfer_mib)
                                             and max_transfer_mib * 2**20 >= 4096
                                             and max_transfer_mib <= MAX_TRANSFER_MIB):
        raise UserError(f"--max-transfer-mib must be a size in MiB from 4 KiB (0.00390625) to "
                        f"{MAX_TRANSFER_MIB:,} (16 GiB), got {max_transfer_mib}")


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))


def _remove_unloadable(folder: Path) -> None:
    """After a failure, remove a bundle folder this run created if it holds no solo sample.

    Why: a bundle is valid once it holds one solo sample (docs/profiling.md); a failure
    before that (a model that cannot be built) would otherwise leave a folder with only
    profile.json, which looks like a result and loads as none. A bundle that took samples
    stays: it is valid and the same command resumes it.
    """
    import shutil

    from strait_sim.profiler.bundle_store import BundleStore

    try:
        BundleStore(folder).validate()
    except UserError:
        shutil.rmtree(folder, ignore_errors=True)


def _command_line(ctx: typer.Context) -> str:
    """The command as given (flags that differ from their defaults), for profile.json."""
    import shlex

    parts = ["strait-sim", "profile"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value == param.default or value in (None, [], (), False):
            continue
        flag = max(param.opts, key=len)
        if value is True:
            parts.append(flag)
            continue
        for v in value if isinstance(value, list | tuple) else [value]:
            parts += [flag, shlex.quote(str(v))]
    return " ".join(parts)


class RichProgress:
    """A rich progress bar per part, with time remaining; notes printed above it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True)
        self.bar = Progress(TextColumn("{task.description:<12}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("left"), TimeRemainingColumn(),
                            console=self.console, transient=False)
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def start(self, part: str, total: int, done: int = 0) -> None:
        if part in self.tasks:
            self.bar.update(self.tasks[part], total=total, completed=done)
        else:
            self.tasks[part] = self.bar.add_task(part, total=total, completed=done)

    def advance(self, part: str, n: int = 1) -> None:
        if part in self.tasks:
            self.bar.advance(self.tasks[part], n)

    def note(self, message: str) -> None:
        self.bar.console.print(f"[yellow]note:[/yellow] {message}")


def _recorded_threads(folder: Path) -> int | None:
    """threads_per_stream of the bundle being resumed (None: new, or not recorded)."""
    import json

    try:
        meta = json.loads((folder / "profile.json").read_text())
        threads = meta.get("backend", {}).get("threads_per_stream")
    except (OSError, ValueError, AttributeError):
        return None
    return threads if isinstance(threads, int) and threads > 0 else None


def register(app: typer.Typer) -> None:
    profile_app = typer.Typer(help="Measure a GPU (or the CPU) into a profile bundle.",
                              add_completion=False)

    @profile_app.callback(invoke_without_command=True)
    def profile(
        ctx: typer.Context,
        gpu: int | None = typer.Option(None, "--gpu", help="Profile CUDA GPU N."),
        cpu: bool = typer.Option(False, "--cpu", help="Profile the CPU (torch-cpu)."),
        models: str | None = typer.Option(
            None, help="Comma-separated models (default: the zoo's eight default models)."),
        batches: str | None = typer.Option(
            None, help=f"Batch sizes (default GPU {GPU_DEFAULT_BATCHES}, CPU "
                       f"{CPU_DEFAULT_BATCHES})."),
        only: str = typer.Option("solo,pairs,transfers,kernels",
                                 help="Parts: solo,pairs,triples,transfers,kernels,"
                                      "utilization (triples: with --slots 3)."),
        slots: int = typer.Option(
            2, "--slots", help="Co-runners the bundle is for: 3 also measures a seeded "
            "sample of 3-way co-locations (triples.csv; the truth model's rule for more "
            "co-runners than pairs is fitted to them) on a 3-stream backend."),
        triple_budget_s: float = typer.Option(
            120.0, "--triple-budget-s", help="Seconds this session may spend on 3-way "
            "co-locations (with --slots 3; 0: no limit)."),
        out: Path | None = typer.Option(None, help="Bundle folder (created, or resumed)."),
        budget_s: float = typer.Option(
            300.0, "--budget-s", help="Seconds this session may spend on pairs; a seeded "
                                      "sample of the pair grid is taken (0: no limit)."),
        reps: int | None = typer.Option(None, help="Solo samples per (model, batch) "
                                                   "(default GPU 30, CPU 8)."),
        pair_reps: int | None = typer.Option(None, help="Samples per pair and offset "
                                                        "(default GPU 5, CPU 2)."),
        offsets: str = typer.Option("0,0.25,0.5,0.75",
                                    help="Start offsets, fractions of the shorter solo time."),
        precision: str | None = typer.Option(None, help="fp16|fp32|bf16 (GPU default fp16, "
                                                        "CPU fp32)."),
        backend: str | None = typer.Option(None, help="torch-cuda|torch-cpu|tensorrt."),
        model_file: list[Path] = typer.Option(
            [], "--model-file", help="Python file defining MODELS (list of ModelSpec)."),
        max_transfer_mib: float | None = typer.Option(
            None, help="Largest copy in MiB (default GPU 256, CPU 64)."),
        transfer_reps: int = typer.Option(5, help="Rounds per transfer setting."),
        kernel_rows: int = typer.Option(200, help="Most kernel rows kept per (model, batch)."),
        warmup: int = typer.Option(3, help="Warm-up runs before each solo unit."),
        threads_per_stream: int | None = typer.Option(
            None, help="CPU only: torch threads per stream (default: the cores shared "
                       "out among the streams, 2 or --slots; more makes timings depend on "
                       "history; a resumed bundle keeps its own)."),
        no_cuda_graphs: bool = typer.Option(False, "--no-cuda-graphs",
                                            help="Run forwards eagerly (torch-cuda)."),
        note: list[str] = typer.Option([], "--note", help="A line for profile.json notes."),
        seed: int = typer.Option(0, help="Seed for weights, inputs and the pair sample."),
        force: bool = typer.Option(False, "--force",
                                   help="Profile even if the device is busy (the bundle "
                                        "records the load seen)."),
    ) -> None:
        """Measure solo, co-located and PCIe timings into a profile bundle (resumable)."""
        if ctx.invoked_subcommand is not None:
            return
        if (gpu is None) == (not cpu):
            if gpu is None:
                raise UserError("choose the device: --gpu N or --cpu")
            raise UserError("--gpu and --cpu exclude each other")
        backend_name = backend or ("torch-cpu" if cpu else "torch-cuda")
        if cpu and backend_name != "torch-cpu":
            raise UserError(f"--cpu needs --backend torch-cpu, not {backend_name}")
        if gpu is not None and backend_name == "torch-cpu":
            raise UserError("--backend torch-cpu needs --cpu")
        _check_numbers(seed=seed, budgets={"--budget-s": budget_s,
                                           "--triple-budget-s": triple_budget_s},
                       warmup=warmup, max_transfer_mib=max_transfer_mib,
                       counts={"--reps": reps, "--pair-reps": pair_reps,
                               "--transfer-reps": transfer_reps, "--kernel-rows": kernel_rows,
                               "--threads-per-stream": threads_per_stream})

        from strait_sim.profiler.backends import DEFAULT_PRECISION, check_gpu, make_backend
        from strait_sim.profiler.measure_common import MIB, PARTS, Settings, default_transfer_sizes
        from strait_sim.profiler.session import run_session
        from strait_sim.profiler.zoo import DEFAULT_MODELS, model_registry, resolve_models

        if gpu is not None and backend_name in ("torch-cuda", "tensorrt"):
            if backend_name == "tensorrt":
                from strait_sim.profiler.tensorrt_backend import require_tensorrt

                require_tensorrt()
            check_gpu(gpu)  # one line, before any work, on a machine without the GPU
        parts = _names(only)
        bad = [p for p in parts if p not in PARTS]
        if bad or not parts:
            raise UserError(f"--only: unknown part(s) {', '.join(bad) or '(none)'}; "
                            f"valid: {', '.join(PARTS)}")
        if slots not in (2, 3):
            raise UserError(f"--slots: the profiler measures 2 (pairs) or 3 (pairs and "
                            f"3-way co-locations) co-runners, got {slots}")
        if "triples" in parts and slots != 3:
            raise UserError("--only triples needs --slots 3 (three streams)")
        if slots == 3 and "triples" not in parts:
            parts = (*parts, "triples")
        streams = slots
        registry = model_registry([str(f) for f in model_file])
        names = DEFAULT_MODELS if models is None else _names(models)
        if not names:
            raise UserError(f"--models names no model (got {models!r}); leave it out for "
                            f"the default {len(DEFAULT_MODELS)}: {', '.join(DEFAULT_MODELS)}")
        specs = resolve_models(names, registry)
        precision = precision or DEFAULT_PRECISION[backend_name]
        on_gpu = gpu is not None
        max_mib = max_transfer_mib if max_transfer_mib is not None else (256 if on_gpu else 64)
        settings = Settings(
            models=tuple(s.name for s in specs),
            batches=_ints(batches or (GPU_DEFAULT_BATCHES if on_gpu else CPU_DEFAULT_BATCHES),
                          "--batches"),
            parts=parts,
            reps=reps if reps is not None else (30 if on_gpu else 8),
            warmup=warmup,
            pair_reps=pair_reps if pair_reps is not None else (5 if on_gpu else 2),
            offsets_frac=_floats(offsets, "--offsets"),
            pair_budget_s=None if budget_s <= 0 else budget_s,
            triple_budget_s=None if triple_budget_s <= 0 else triple_budget_s,
            transfer_sizes=default_transfer_sizes(int(max_mib * MIB)),
            transfer_reps=transfer_reps,
            kernel_rows=kernel_rows,
            seed=seed,
        )
        # A profile taken beside another job describes that contention, not the device:
        # refuse a busy device as run --live does (one line, exit 2), unless --force.
        from strait_sim.live.busy_check import check_device_idle

        busy = check_device_idle("cuda" if on_gpu else "cpu", gpu, force=force)
        if busy.get("busy_reasons"):
            note = [*note, f"profiled on a busy device (--force): "
                           f"{'; '.join(busy['busy_reasons'])}"]
        out_dir = out or Path(f"profile-{'gpu' + str(gpu) if on_gpu else 'cpu'}-{precision}")
        from strait_sim.output_folder import check_output_folder

        check_output_folder(out_dir, "profile", resume=True)  # a bundle is resumed, never
        # replaced; a folder of something else is refused before the device is touched
        spec_map = {s.name: s for s in specs}
        # Backend warm-up (per stream, in prepare): CUDA graph capture needs a few eager
        # runs first; on the CPU one run per stream suffices (solo adds --warmup more).
        options: dict = {"warmup": warmup if on_gpu else 1, "seed": seed}
        if on_gpu:
            options["cuda_graphs"] = not no_cuda_graphs
        elif threads_per_stream is None:
            # resuming: the bundle's threads, whatever --slots this session asks, so that
            # every sample of one bundle ran with the same threads per stream
            recorded = _recorded_threads(out_dir)
            if recorded is not None:
                options["threads_per_stream"] = recorded
        else:
            from strait_sim.profiler.cpu_backend import usable_cores

            if streams * threads_per_stream > usable_cores():
                print(f"profile: warning: {streams} streams x {threads_per_stream} threads "
                      f"exceed the "
                      f"{usable_cores()} usable cores: OpenMP then sleeps between operators "
                      "and forwards take times that depend on the other stream's history "
                      "(see docs/profiling.md)", file=sys.stderr)
            options["threads_per_stream"] = threads_per_stream

        def make():  # noqa: ANN202
            return make_backend(backend_name, device=gpu, streams=streams, precision=precision,
                                models=spec_map, **options)

        command = _command_line(ctx)
        progress = RichProgress()
        created = not Path(out_dir).exists()
        try:
            with progress:
                store = run_session(out_dir, make, settings, progress=progress,
                                    command=command, notes=tuple(note),
                                    model_files=tuple(str(f) for f in model_file))
        except Exception:
            if created:
                _remove_unloadable(Path(out_dir))
            raise
        except KeyboardInterrupt:
            progress.console.print(f"interrupted: every sample taken so far is in {out_dir}; "
                                   f"run the same command again to resume")
            raise
        try:
            store.validate()
            ok = "valid bundle"
        except UserError as exc:
            ok = f"not yet a loadable bundle ({exc})"
        progress.console.print(f"wrote {out_dir} ({ok}); see: strait-sim profile show {out_dir}")

    @profile_app.command("show")
    def show(
        bundle: str = typer.Argument(..., help="Bundle folder or bundled profile name."),
        plots: Path | None = typer.Option(
            None, help="Folder for the PNGs (default: ./<bundle name>-plots)."),
        no_plots: bool = typer.Option(False, "--no-plots", help="Print only."),
        overwrite: bool = overwrite_option(),
        calibration: Path | None = typer.Option(
            None, help="Also write the truth model's calibration, one row per pair key "
                       "(slowdown, 90% interval, identified, reason), to this CSV."),
    ) -> None:
        """Print solo latencies, the slowdown matrix, the calibration and the link fit;
        draw the plots."""
        from rich.console import Console

        from strait_sim.atomic import atomic_dir
        from strait_sim.output_folder import check_output_folder
        from strait_sim.profile_bundle import load_bundle
        from strait_sim.profiler.show import print_summary, write_plots

        b = load_bundle(bundle)
        folder = plots or Path(f"{b.name}-plots")
        if not no_plots:
            check_output_folder(folder, "profile-plots", overwrite=overwrite, flag="--plots")
        console = Console()
        print_summary(b, console)
        if calibration is not None:
            from strait_sim.atomic import atomic_path
            from strait_sim.truth.colocation import calibrate_bundle

            with atomic_path(calibration) as tmp:
                calibrate_bundle(b).table().to_csv(tmp, index=False, float_format="%.6g")
            console.print(f"wrote {calibration}")
        if not no_plots:
            with atomic_dir(folder, "profile-plots") as tmp:
                written = write_plots(b, tmp)
            for path in written:
                console.print(f"wrote {folder / path.name}")

    app.add_typer(profile_app, name="profile")
