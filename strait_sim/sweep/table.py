"""The tidy results table of a sweep: one row per (point, class).

``class`` is ``high``, ``low`` or ``overall``. Each row carries the point's key and status
(``ok`` or ``failed``, with the error's first line), every parameter of its resolved spec
as its own column (``policy``, ``profile``, each workload option by its Python name,
``gpus slots max_batch seed interference pcie``, ``policy_params.<name>``), that class's
metrics (``count on_time late dropped rejected failed violation_rate mean_ms p50_ms p90_ms
p95_ms p99_ms goodput_rps``) and the point-wide ones (``jain_fairness
gpu_busy_fraction offered_rps duration_s``). ``wall_s`` is the host's wall-clock time of
the simulation: a timing, not a result, and the only column that differs between reruns.
A failed point has its three rows with empty metrics, so group-bys stay aligned.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from strait_sim.atomic import atomic_path
from strait_sim.sweep.executors import PointOutcome
from strait_sim.sweep.experiment_file import CLASS_METRICS, POINT_METRICS

CLASSES = ("high", "low", "overall")
RESULTS_FILE = "results.parquet"


def spec_columns(spec: dict) -> dict:
    """The spec as flat columns (workload options under their own names)."""
    cols = {"policy": spec["policy"], "profile": spec["profile"]}
    cols.update(spec["workload"])
    for key in ("gpus", "slots", "max_batch", "seed", "interference", "pcie"):
        cols[key] = spec[key]
    for key, value in spec.get("policy_params", {}).items():
        cols[f"policy_params.{key}"] = value
    return cols


def offered_rate(workload: object) -> float | None:
    """The arrival rate the workload was built with (resolved from --load if need be)."""
    if not isinstance(workload, dict):
        return None
    arrivals = workload.get("arrivals")
    if isinstance(arrivals, dict) and isinstance(arrivals.get("rate"), int | float):
        return float(arrivals["rate"])
    rate = workload.get("rate")
    return float(rate) if isinstance(rate, int | float) else None


def outcome_rows(outcome: PointOutcome) -> list[dict]:
    params = spec_columns(outcome.spec)
    clash = set(params) & {*CLASS_METRICS, *POINT_METRICS, "key", "status", "error",
                           "class", "wall_s", "offered_rps", "duration_s"}
    params = {(f"param.{k}" if k in clash else k): v for k, v in params.items()}
    base = {"key": outcome.key, "status": "ok" if outcome.ok else "failed",
            "error": outcome.error, **params}
    rows = []
    summary = outcome.summary if outcome.ok else None
    for cls in CLASSES:
        row = dict(base, **{"class": cls})
        if summary is not None:
            block = summary["overall"] if cls == "overall" else summary["by_class"][cls]
            row.update({m: block.get(m) for m in CLASS_METRICS})
            row.update({m: summary.get(m) for m in POINT_METRICS})
            row["offered_rps"] = offered_rate(summary.get("workload"))
            row["duration_s"] = summary.get("duration_s")
            row["wall_s"] = summary.get("engine", {}).get("wall_s")
        rows.append(row)
    return rows


def results_frame(outcomes: Iterable[PointOutcome]) -> pd.DataFrame:
    df = pd.DataFrame([row for o in outcomes for row in outcome_rows(o)])
    for col in df.columns:  # one type per column, or Parquet refuses it
        kinds = {type(v) for v in df[col] if v is not None and v == v}
        if len(kinds) > 1 and not kinds <= {int, float}:
            df[col] = [None if v is None else str(v) for v in df[col]]
    for col in (*CLASS_METRICS, *POINT_METRICS, "offered_rps", "duration_s", "wall_s"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def write_results_table(out_dir: Path, outcomes: Iterable[PointOutcome]) -> Path:
    target = Path(out_dir) / RESULTS_FILE
    df = results_frame(outcomes)
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)
    return target
