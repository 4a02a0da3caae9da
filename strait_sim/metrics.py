"""Metrics defined once, for simulated and live runs alike (DESIGN.md section 6).

A request *violates* its deadline unless it completed on time: late, dropped, rejected
and failed requests all count. Latency percentiles are over completed requests (on time
or late), from arrival to the end of the device-to-host copy. Goodput is on-time requests
per second of the run's measurement window (``duration_s``: from the workload's time
origin, 0 unless a trace replayed as given starts later, to the run's end; the device's
busy fraction is over the same window). Jain's index compares the two classes' deadline satisfaction
(share on time): 1 is perfectly even, 0.5 is as uneven as two classes can be.

The ``slo`` block (:func:`slo_view`) adds what serving papers report and the class view
above hides:

- percentiles with every unserved request (dropped, rejected, failed) counted as never
  served, an infinite latency, so that dropping cannot flatter a tail (``None`` where a
  percentile falls among them), and the SLO attainment (share on time);
- a per-model breakdown (the class metrics per model, and each model's violation rate
  per class);
- fairness beyond two class means: Jain's index over every (model, class) group's
  on-time share, weighted by the group's requests (``jain_model_class``);
- goodput over the arrival window (first to last arrival), not the run's span, which
  includes the drain after the last arrival.

Runs too large to summarise in memory (``metrics_stream``) carry no ``slo`` block.
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
        "slo": slo_view(df, duration_s),
    }


# -- the SLO-attainment view, per-model breakdown, fairness, goodput over arrivals -----------


def slo_percentiles(df: pd.DataFrame, rows: np.ndarray | None = None) -> dict:
    """Latency percentiles with every request that was not served (dropped, rejected,
    failed) counted as never served: an infinite latency, so a policy cannot improve its
    tail by dropping (the SLO-attainment view of serving papers). A percentile that falls
    among the unserved requests is ``None`` (unbounded)."""
    status = df["status"]
    done = label_mask(status, "on_time", "late")
    n = len(df) if rows is None else int(np.count_nonzero(rows))
    if rows is not None:
        done &= rows
    lat = np.sort((df["finish_s"].to_numpy()[done] - df["arrival_s"].to_numpy()[done]) * 1e3)
    served = len(lat)
    on_time = label_mask(status, "on_time")
    if rows is not None:
        on_time &= rows
    out: dict = {"count": n, "served": served,
                 "slo_attainment": int(np.count_nonzero(on_time)) / n if n else None}
    for q in (50, 90, 95, 99):
        out[f"p{q}_ms"] = _pct_with_unserved(lat, n, q)
    return out


def _pct_with_unserved(lat_sorted: np.ndarray, n: int, q: float) -> float | None:
    """numpy's "linear" percentile of ``lat_sorted`` padded with ``n - len`` infinities
    (``None`` when it involves one of them)."""
    if n == 0:
        return None
    pos = q / 100.0 * (n - 1)
    lo = int(math.floor(pos))
    frac = pos - lo
    served = len(lat_sorted)
    if lo >= served or (frac > 0 and lo + 1 >= served):
        return None
    a = float(lat_sorted[lo])
    if frac == 0:
        return a
    return float(np.percentile(lat_sorted[lo:lo + 2], frac * 100.0))


def weighted_jain(shares: list[float], weights: list[float]) -> float | None:
    """Jain's index of ``shares`` weighted by ``weights``:
    ``(sum w x)^2 / (sum w * sum w x^2)``; 1 when every group gets the same share."""
    pairs = [(x, w) for x, w in zip(shares, weights, strict=True)
             if w > 0 and x is not None and not math.isnan(x)]
    if not pairs:
        return None
    sw = sum(w for _, w in pairs)
    swx = sum(w * x for x, w in pairs)
    swx2 = sum(w * x * x for x, w in pairs)
    return swx * swx / (sw * swx2) if swx2 > 0 else None


def slo_view(df: pd.DataFrame, duration_s: float) -> dict:
    """The ``slo`` block of summary.json (see the module docstring)."""
    prio = df["priority"]
    classes = {name: label_mask(prio, name) for name in PRIORITY_NAMES}
    by_class = {name: slo_percentiles(df, rows) for name, rows in classes.items()}
    on_time = label_mask(df["status"], "on_time")
    models = df["model"]
    names = (list(models.cat.categories) if isinstance(models.dtype, pd.CategoricalDtype)
             else sorted(models.astype(str).unique()))
    by_model: dict = {}
    shares: list[float] = []
    weights: list[float] = []
    for m in names:
        rows_m = label_mask(models, m)
        if not rows_m.any():
            continue
        block = class_metrics(df, rows_m)
        block["by_class"] = {}
        for name, rows_c in classes.items():
            rows = rows_m & rows_c
            k = int(np.count_nonzero(rows))
            if not k:
                continue
            share = int(np.count_nonzero(on_time & rows)) / k
            block["by_class"][name] = {"count": k, "violation_rate": 1.0 - share}
            shares.append(share)
            weights.append(float(k))
        by_model[str(m)] = block
    arrivals = df["arrival_s"].to_numpy()
    window = float(arrivals.max() - arrivals.min()) if len(arrivals) > 1 else 0.0
    n_on_time = int(np.count_nonzero(on_time))
    return {
        "by_class": by_class,
        "overall": slo_percentiles(df),
        "by_model": by_model,
        "jain_model_class": weighted_jain(shares, weights),
        "arrival_window_s": window,
        "goodput_arrival_rps": n_on_time / window if window > 0 else None,
        "run_span_s": duration_s,
    }
