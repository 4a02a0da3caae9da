"""The on-disk layout of a sweep folder, and nothing else.

::

    OUT/
      points/<key>/summary.json       the point's summary (the run's summary.json)
      points/<key>/spec.json          the resolved spec it ran
      points/<key>/requests.parquet   per-request results (unless keep_requests is off)
      points/<key>.error.json         a failed point: spec, error type, message, traceback
      results.parquet                 the tidy table of all points (strait_sim.sweep.table)
      sweep.json                      what the sweep was: name, metrics, grid, counts
      experiment.toml                 a copy of the experiment file it ran

Each point folder is written whole by :func:`strait_sim.atomic.atomic_dir`: it exists only
once complete, so "done" simply means "``points/<key>/summary.json`` exists". An error file
is removed when the point later succeeds.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pandas as pd

from strait_sim.atomic import atomic_dir, atomic_path
from strait_sim.results import dumps

POINTS = "points"


def point_dir(out_dir: Path, key: str) -> Path:
    return Path(out_dir) / POINTS / key


def error_path(out_dir: Path, key: str) -> Path:
    return Path(out_dir) / POINTS / f"{key}.error.json"


def is_done(out_dir: Path, key: str) -> bool:
    return (point_dir(out_dir, key) / "summary.json").is_file()


def read_summary(out_dir: Path, key: str) -> dict:
    return json.loads((point_dir(out_dir, key) / "summary.json").read_text())


def write_point_folder(folder: Path, spec: dict, summary: dict,
                       requests: pd.DataFrame | None) -> Path:
    """Write one point's folder atomically."""
    with atomic_dir(folder) as tmp:
        if requests is not None:
            requests.to_parquet(tmp / "requests.parquet", index=False)
        (tmp / "spec.json").write_text(dumps(spec))
        (tmp / "summary.json").write_text(dumps(summary))
    return folder


def write_point(out_dir: Path, key: str, spec: dict, summary: dict,
                requests: pd.DataFrame | None) -> Path:
    folder = write_point_folder(point_dir(out_dir, key), spec, summary, requests)
    clear_error(out_dir, key)
    return folder


def write_error(out_dir: Path, key: str, spec: dict, error: str, kind: str,
                traceback_text: str) -> Path:
    target = error_path(out_dir, key)
    with atomic_path(target) as tmp:
        tmp.write_text(dumps({"key": key, "spec": spec, "error_type": kind, "error": error,
                              "traceback": traceback_text}))
    return target


def clear_error(out_dir: Path, key: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        error_path(out_dir, key).unlink()
