"""The policy's own prediction accuracy, live beside simulated (validate's reports).

Why a block of its own: a policy that predicts (strait, clockwork, gpulet) records on every
dispatch ``predicted_ms``, the time it expects from the dispatch to the end of the D2H
copy. How far that is from what the device then took says whether the policy perceives the
device it schedules, which is a different question from whether the simulator reproduces
the device (the rest of the report). Simulated and live figures side by side show whether a
prediction error measured in simulation carries over to the device.

Per run (or pooled over a study cell's repeats): the requests served with a prediction,
their mean absolute percentage error (MAPE) against the observed service
(``finish_s - start_s``), the mean bias (predicted - observed, ms) and that bias as a share
of the mean observed service; with repeats, each repeat's MAPE and bias share too.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from strait_sim.metrics import label_mask, prediction_error


def prediction_accuracy(df: pd.DataFrame) -> dict:
    """:func:`strait_sim.metrics.prediction_error` plus the mean observed service and the
    bias as a share of it (``predictions`` is 0 when the policy predicts nothing)."""
    out = prediction_error(df)
    if not out.get("predictions"):
        return out
    done = label_mask(df["status"], "on_time", "late")
    pred = df["predicted_ms"].to_numpy()[done]
    obs = (df["finish_s"].to_numpy()[done] - df["start_s"].to_numpy()[done]) * 1e3
    ok = ~np.isnan(pred) & (obs > 0)
    mean = float(obs[ok].mean())
    out["mean_service_ms"] = mean
    out["bias_share"] = out["mean_bias_ms"] / mean if mean > 0 else None
    return out


def pooled_accuracy(frames: list[pd.DataFrame]) -> dict:
    """Pooled over runs (a study cell's repeats), with each run's MAPE and bias share."""
    if not frames:
        return {"predictions": 0}
    out = prediction_accuracy(pd.concat(frames, ignore_index=True))
    if out.get("predictions"):
        each = [prediction_accuracy(f) for f in frames]
        out["per_repeat_mape"] = [e.get("mape") for e in each]
        out["per_repeat_bias_share"] = [e.get("bias_share") for e in each]
    return out


def cell_block(pairs: list[tuple[pd.DataFrame, pd.DataFrame]]) -> dict | None:
    """``{"live": ..., "sim": ...}`` for a study cell, None when the policy predicts
    nothing in either mode."""
    live = pooled_accuracy([lv for lv, _ in pairs])
    sim = pooled_accuracy([sm for _, sm in pairs])
    if not live.get("predictions") and not sim.get("predictions"):
        return None
    return {"live": live, "sim": sim}


def _pct(v: float | None, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{100 * v:+.1f}%" if sign else f"{100 * v:.1f}%"


#: The columns of a study's prediction-accuracy table (study.md and report.html).
PREDICTION_COLUMNS = ("policy", "load", "live n", "live MAPE", "live bias", "sim n",
                      "sim MAPE", "sim bias")
PREDICTION_TITLE = ("Policy prediction accuracy (predicted vs observed service, dispatch to "
                    "end of D2H)")
PREDICTION_NOTE = ("Pooled over the repeats; bias = mean (predicted - observed) over the "
                   "mean observed service.")


def study_prediction_rows(study: dict) -> list[tuple[str, ...]]:
    """Per policy that predicts and load, live beside simulated, as text cells (none when
    no policy of the study predicts)."""
    rows = []
    for policy, by_load in study.get("cells", {}).items():
        for tag, cell in by_load.items():
            p = cell.get("prediction")
            if not p:
                continue
            lv, sm = p["live"], p["sim"]
            rows.append((policy, tag, str(lv.get("predictions", 0)), _pct(lv.get("mape")),
                         _pct(lv.get("bias_share"), True), str(sm.get("predictions", 0)),
                         _pct(sm.get("mape")), _pct(sm.get("bias_share"), True)))
    return rows


def render_study_block(study: dict) -> list[str]:
    """study.md's section: per policy that predicts and load, live beside simulated."""
    rows = study_prediction_rows(study)
    if not rows:
        return []
    return [f"## {PREDICTION_TITLE}", "", PREDICTION_NOTE, "",
            "| " + " | ".join(PREDICTION_COLUMNS) + " |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
            *("| " + " | ".join(row) + " |" for row in rows), ""]


__all__ = ["PREDICTION_COLUMNS", "PREDICTION_NOTE", "PREDICTION_TITLE", "cell_block",
           "pooled_accuracy", "prediction_accuracy", "render_study_block",
           "study_prediction_rows"]
