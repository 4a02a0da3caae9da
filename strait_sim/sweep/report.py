"""``strait-sim sweep report DIR``: tables and plots from a finished sweep folder.

The unit of replication is the seed: for every setting (the grid's varied parameters other
than ``seed``) and class, each metric's mean over seeds is shown with a 95% interval.
``summary.csv`` keeps the Student's t half-width (``_ci95``, n - 1 degrees of freedom) and
adds a percentile-bootstrap interval clipped to the metric's possible range (``_lo``,
``_hi``): with two seeds a t interval of a violation rate can reach -80%, which no plot or
table shows. Plots use the bounded interval, say n, and label axes with units; rates are
percentages. The x axis of the plots is ``load`` when the grid varies it (else ``rate``,
``hp_fraction``, ``slo``, the first numeric varied parameter, or the policy itself); each
line is a policy (and any other varied parameter).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from strait_sim.atomic import atomic_dir
from strait_sim.errors import UserError
from strait_sim.plotting import bounded_interval, clamp_ylim
from strait_sim.sweep.experiment_file import CLASS_METRICS, DEFAULT_METRICS, METRICS
from strait_sim.sweep.table import RESULTS_FILE

MANIFEST = "sweep.json"
REPORT_DIR = "report"
X_PREFERENCE = ("load", "rate", "hp_fraction", "slo")

# metric -> (axis label with unit, scale for display, lower bound, upper bound)
METRIC_INFO: dict[str, tuple[str, float, float | None, float | None]] = {
    "violation_rate": ("deadline violations (%)", 100.0, 0.0, 1.0),
    "p50_ms": ("p50 latency (ms)", 1.0, 0.0, None),
    "p90_ms": ("p90 latency (ms)", 1.0, 0.0, None),
    "p95_ms": ("p95 latency (ms)", 1.0, 0.0, None),
    "p99_ms": ("p99 latency (ms)", 1.0, 0.0, None),
    "mean_ms": ("mean latency (ms)", 1.0, 0.0, None),
    "goodput_rps": ("goodput (requests/s on time)", 1.0, 0.0, None),
    "jain_fairness": ("Jain fairness index (0-1)", 1.0, 0.0, 1.0),
    "gpu_busy_fraction": ("device busy (%)", 100.0, 0.0, 1.0),
}
AXIS_LABEL = {"load": "offered load (share of solo capacity)", "rate": "arrival rate (req/s)",
              "hp_fraction": "share of high-priority requests", "slo": "deadline (× solo latency)",
              "policy": "policy"}


SHORT_HEADER = {"violation_rate": "violated %", "goodput_rps": "goodput req/s",
                "gpu_busy_fraction": "busy %", "jain_fairness": "Jain (0-1)"}


def short_header(metric: str) -> str:
    """A column header for the terminal: short, with its unit."""
    if metric in SHORT_HEADER:
        return SHORT_HEADER[metric]
    if metric.endswith("_ms"):
        return f"{metric[:-3]} ms"
    return metric.replace("_", " ")


def metric_info(metric: str) -> tuple[str, float, float | None, float | None]:
    """Label, display scale and range of a metric (counts: requests, 0 and up)."""
    return METRIC_INFO.get(metric, (f"{metric.replace('_', ' ')} (requests)", 1.0, 0.0, None))


@dataclass
class Report:
    table: pd.DataFrame  # one row per setting and class: <metric>_mean, _ci95, _n
    x: str | None
    series: list[str]
    metrics: list[str]
    failed: int
    folder: Path | None = None


def read_sweep(folder: Path) -> tuple[pd.DataFrame, dict]:
    folder = Path(folder)
    path = folder / RESULTS_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found (is {folder} a finished sweep folder?)")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
    manifest = {}
    if (folder / MANIFEST).is_file():
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{folder / MANIFEST}, line {exc.lineno}: not valid JSON") from None
    return df, manifest


def ci95(values: np.ndarray) -> float:
    """Half-width of the 95% t interval of the mean; NaN below two values."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return math.nan
    return float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n))


def _check_some_point_ran(df: pd.DataFrame) -> None:
    """Refuse a table with no successful point, saying so.

    A failed point has no metric columns, so without this a sweep where every point
    failed was reported as 'metric(s) not in the results table', which hides the cause.
    """
    if df.empty or (df["status"] == "ok").any():
        return
    n = df["key"].nunique()
    errors = df["error"].dropna() if "error" in df.columns else pd.Series(dtype=object)
    first = f"; the first error: {errors.iloc[0]}" if len(errors) else ""
    raise UserError(f"every point failed ({n} of {n}), so there is nothing to report{first}")


def _is_numeric(column: pd.Series) -> bool:
    """Whether every value that is there reads as a number (booleans do not count)."""
    if pd.api.types.is_bool_dtype(column):
        return False
    present = column.dropna()
    if present.map(lambda v: isinstance(v, bool)).any():
        return False
    return bool(pd.to_numeric(present, errors="coerce").notna().all())


def _check_numeric(df: pd.DataFrame, metrics: list[str]) -> None:
    """Refuse a metric that is not a number (``--metric policy``), naming those that are.

    Why here: the per-setting means convert each metric to float, and a text column
    failed there as 'could not convert string to float: 'fifo''.
    """
    ok = df[df["status"] == "ok"]
    bad = [m for m in metrics if not _is_numeric(ok[m])]
    if bad:
        numeric = [m for m in METRICS if m in df.columns and _is_numeric(ok[m])]
        raise UserError(f"metric '{bad[0]}' is not numeric; numeric metrics: "
                        f"{', '.join(numeric) or '(none)'}")


def summarize_sweep(df: pd.DataFrame, manifest: dict, metrics: list[str] | None = None
                    ) -> Report:
    metrics = list(metrics or manifest.get("metrics") or DEFAULT_METRICS)
    _check_some_point_ran(df)
    missing = [m for m in metrics if m not in df.columns]
    if missing:
        raise UserError(f"metric(s) not in the results table: {', '.join(missing)}")
    _check_numeric(df, metrics)
    varied = manifest.get("grid_keys") or [
        c for c in df.columns if c not in ("key", "status", "error", "class", "wall_s")
        and c not in metrics and df[c].nunique(dropna=False) > 1]
    varied = [c if c in df.columns else f"param.{c}" for c in varied]
    setting = [c for c in varied if c not in ("seed", "param.seed") and c in df.columns]
    x = next((c for c in X_PREFERENCE if c in setting), None)
    if x is None:
        x = next((c for c in setting if c != "policy"
                  and pd.api.types.is_numeric_dtype(df[c])), None)
    if x is None and "policy" in setting:
        x = "policy"  # nothing numeric varies: policies side by side
    series = [c for c in setting if c != x]
    ok = df[df["status"] == "ok"]
    failed = int(df.loc[df["status"] != "ok", "key"].nunique())
    rows = []
    keys = setting + ["class"]
    for group, part in ok.groupby(keys, dropna=False, sort=True):
        row = dict(zip(keys, group if isinstance(group, tuple) else (group,), strict=True))
        row["seeds"] = len(part)
        for m in metrics:
            vals = part[m].dropna().to_numpy(dtype=float)
            row[f"{m}_mean"] = float(vals.mean()) if len(vals) else math.nan
            row[f"{m}_ci95"] = ci95(vals)
            _label, _scale, lo, hi = metric_info(m)
            _, row[f"{m}_lo"], row[f"{m}_hi"], _n = bounded_interval(vals, lo=lo, hi=hi)
        rows.append(row)
    return Report(pd.DataFrame(rows), x, series, metrics, failed)


def series_label(row: pd.Series, series: list[str]) -> str:
    parts = [str(row[c]) if c == "policy" else f"{c}={row[c]}" for c in series]
    return ", ".join(parts) or "all"


def plot_metric(report: Report, metric: str, target: Path) -> None:
    """One panel per class (HP, LP; or overall for point-wide metrics), a line per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = report.table
    classes = ["high", "low"] if metric in CLASS_METRICS else ["overall"]
    fig, axes = plt.subplots(1, len(classes), figsize=(5.5 * len(classes), 4), squeeze=False)
    for ax, cls in zip(axes[0], classes, strict=True):
        part = table[table["class"] == cls]
        labels = part.apply(lambda r: series_label(r, report.series), axis=1) \
            if len(part) else pd.Series(dtype=str)
        label_text, scale, lo, hi = metric_info(metric)
        for label in sorted(set(labels)):
            line = part[labels == label].sort_values(report.x)
            ys = line[f"{metric}_mean"].to_numpy(dtype=float) * scale
            low = line[f"{metric}_lo"].to_numpy(dtype=float) * scale
            high = line[f"{metric}_hi"].to_numpy(dtype=float) * scale
            err = np.vstack([np.nan_to_num(np.clip(ys - low, 0, None)),
                             np.nan_to_num(np.clip(high - ys, 0, None))])
            xs = line[report.x].to_numpy()
            numeric = pd.api.types.is_numeric_dtype(line[report.x])
            seeds = int(line["seeds"].min()) if len(line) else 0
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3,
                        label=f"{label} (n={seeds} seeds)",
                        linestyle="-" if numeric else "none")  # no lines between categories
        ax.set_title({"high": "high priority", "low": "low priority"}.get(cls, cls))
        ax.set_xlabel(AXIS_LABEL.get(report.x, report.x))
        ax.set_ylabel(label_text)
        clamp_ylim(ax, None if lo is None else lo * scale, None if hi is None else hi * scale)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize="small")
    fig.suptitle(f"{metric_info(metric)[0]} vs {AXIS_LABEL.get(report.x, report.x)}\n"
                 "mean over seeds, 95% bootstrap interval within the possible range")
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def write_report(folder: Path, metrics: list[str] | None = None) -> Report:
    """Write ``DIR/report/`` (summary.csv and one PNG per metric) atomically."""
    folder = Path(folder)
    df, manifest = read_sweep(folder)
    report = summarize_sweep(df, manifest, metrics)
    target = folder / REPORT_DIR
    with atomic_dir(target, "sweep-report") as tmp:
        report.table.to_csv(tmp / "summary.csv", index=False)
        if report.x is not None and len(report.table):
            for metric in report.metrics:
                plot_metric(report, metric, tmp / f"{metric}_vs_{report.x}.png")
    report.folder = target
    return report
