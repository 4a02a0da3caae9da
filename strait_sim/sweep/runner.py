"""A whole sweep: experiment file -> points run or reused -> results table and manifest."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from strait_sim.atomic import atomic_path
from strait_sim.output_folder import MARKER, check_output_folder, open_resumable_folder
from strait_sim.results import dumps
from strait_sim.sweep.executors import PointOutcome, check_run_options, run_points
from strait_sim.sweep.experiment_file import Experiment
from strait_sim.sweep.report import MANIFEST
from strait_sim.sweep.table import write_results_table


@dataclass
class SweepResult:
    out: Path
    outcomes: list[PointOutcome]
    table: Path

    @property
    def failed(self) -> list[PointOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def skipped(self) -> int:
        return sum(o.skipped for o in self.outcomes)


def _remove_if_only_marker(folder: Path) -> None:
    """Undo :func:`open_resumable_folder` after a failure before any point ran (e.g. an
    unreachable Dask scheduler): a folder holding only the marker is no result, and it
    would make the next run look like a resume. Only called for a folder this run created;
    anything else in it (a finished point) is kept."""
    with contextlib.suppress(OSError):
        if [p.name for p in folder.iterdir()] == [MARKER]:
            (folder / MARKER).unlink()
            folder.rmdir()


def run_experiment(exp: Experiment, *, workers: int = 1, executor: str = "local",
                   scheduler: str | None = None, force: bool = False,
                   out: Path | None = None, progress: bool = True,
                   allow_large: bool = False) -> SweepResult:
    """Run (or resume) an experiment; the table and manifest cover all its points. A point
    above the work limit fails with the limit's message unless ``allow_large``."""
    out = Path(out if out is not None else exp.out)
    check_run_options(workers, executor, scheduler)  # before the folder: nothing left
    check_output_folder(out, "sweep", resume=True)
    created = not out.exists()
    open_resumable_folder(out, "sweep")
    try:
        outcomes = run_points(exp.specs, workers=workers, executor=executor,
                              scheduler=scheduler, out_dir=out, force=force,
                              progress=progress, keep_requests=exp.keep_requests,
                              allow_large=allow_large)
    except BaseException:
        if created:
            _remove_if_only_marker(out)
        raise
    table = write_results_table(out, outcomes)
    ok = sum(o.ok for o in outcomes)
    manifest = {"name": exp.name, "source": str(exp.source), "metrics": exp.metrics,
                "grid_keys": exp.grid_keys, "points": len(outcomes), "ok": ok,
                "failed": len(outcomes) - ok,
                "keys": [o.key for o in outcomes]}
    with atomic_path(out / MANIFEST) as tmp:
        tmp.write_text(dumps(manifest))
    if exp.text:
        with atomic_path(out / "experiment.toml") as tmp:
            tmp.write_text(exp.text)
    return SweepResult(out, outcomes, table)
