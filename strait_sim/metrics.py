"""Metrics defined once, for simulated and live runs alike (DESIGN.md section 6).

A request *violates* its deadline unless it completed on time: late, dropped, rejected
and failed requests all count. Latency percentiles are over completed requests (on time
or late), from arrival to the end of the device-to-host copy. Goodput is on-time requests
per second of run time. Jain's index compares the two classes' deadline satisfaction
(share on time): 1 is perfectly even, 0.5 is as uneven as two classes can be.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from strait_sim.requests import PRIORITY_NAMES

STATUSES = ("on_time", "late", "dropped", "rejected", "failed")


def _pct(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def label_mask(series: pd.Series, *labels: str) -> np.ndarray:
    """Rows whose label is one of ``labels``. For categorical columns (what the engine
    writes) this compares the integer codes, so 10,000,000 rows never become 10,000,000
    Python strings."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = list(series.cat.categories)
        wanted = [categories.index(v) for v in labels if v in categories]
        return np.isin(series.cat.codes.to_numpy(), wanted)
    return series.astype(str).isin(labels).to_numpy()


def class_metrics(df: pd.DataFrame, rows: np.ndarray | None = None) -> dict:
    """Counts, violation rate and latency percentiles of one group of requests (all of
    ``df``, or the rows where the boolean mask ``rows`` is true)."""
    status = df["status"]
    counts = {}
    for s in STATUSES:
        mask = label_mask(status, s)
        counts[s] = int(np.count_nonzero(mask if rows is None else mask & rows))
    n = len(df) if rows is None else int(np.count_nonzero(rows))
    done = label_mask(status, "on_time", "late")
    if rows is not None:
        done &= rows
    lat_ms = (df["finish_s"].to_numpy()[done] - df["arrival_s"].to_numpy()[done]) * 1e3
    out = {"count": n, "completed": counts["on_time"] + counts["late"], **counts,
           "violation_rate": (n - counts["on_time"]) / n if n else None,
           "mean_ms": float(lat_ms.mean()) if len(lat_ms) else None,
           "p50_ms": _pct(lat_ms, 50), "p90_ms": _pct(lat_ms, 90),
           "p95_ms": _pct(lat_ms, 95), "p99_ms": _pct(lat_ms, 99)}
    return out


def jain_index(values: list[float]) -> float | None:
    xs = [v for v in values if v is not None and not math.isnan(v)]
    if not xs or sum(x * x for x in xs) == 0:
        return None
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs))


def prediction_error(df: pd.DataFrame) -> dict:
    """Error of the policy's predicted service time against the observed one."""
    done = label_mask(df["status"], "on_time", "late")
    pred = df["predicted_ms"].to_numpy()[done]
    obs = (df["finish_s"].to_numpy()[done] - df["start_s"].to_numpy()[done]) * 1e3
    ok = ~np.isnan(pred) & (obs > 0)
    if not ok.any():
        return {"predictions": 0}
    rel = np.abs(pred[ok] - obs[ok]) / obs[ok]
    return {"predictions": int(ok.sum()), "mape": float(rel.mean()),
            "p90_rel_error": float(np.percentile(rel, 90)), "max_rel_error": float(rel.max()),
            "mean_bias_ms": float((pred[ok] - obs[ok]).mean())}


def summarize(df: pd.DataFrame, *, duration_s: float, busy_fraction: float | None = None
              ) -> dict:
    """The ``requests``/``by_class``/``overall`` block of summary.json."""
    by_class = {name: class_metrics(df, label_mask(df["priority"], name))
                for name in PRIORITY_NAMES}
    overall = class_metrics(df)
    overall["goodput_rps"] = overall["on_time"] / duration_s if duration_s > 0 else None
    for name in PRIORITY_NAMES:
        c = by_class[name]
        c["goodput_rps"] = c["on_time"] / duration_s if duration_s > 0 else None
    satisfaction = [1 - by_class[n]["violation_rate"] for n in PRIORITY_NAMES
                    if by_class[n]["count"]]
    return {
        "requests": len(df),
        "by_class": by_class,
        "overall": overall,
        "jain_fairness": jain_index(satisfaction),
        "gpu_busy_fraction": busy_fraction,
        "prediction": prediction_error(df),
        "duration_s": duration_s,
    }
