"""The SLO-attainment view: percentiles with unserved requests counted as misses,
per-model breakdown, request-weighted fairness, goodput over the arrival window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strait_sim.metrics import slo_percentiles, slo_view, summarize, weighted_jain


def _frame(statuses, latencies_ms, priorities=None, models=None, arrivals=None):
    n = len(statuses)
    arrival = np.asarray(arrivals if arrivals is not None else np.arange(n) * 0.1, float)
    lat = np.array([np.nan if v is None else v for v in latencies_ms], float)
    return pd.DataFrame({
        "model": pd.Categorical(models or ["a"] * n),
        "priority": pd.Categorical(priorities or ["high"] * n, categories=["high", "low"]),
        "status": pd.Categorical(statuses, categories=["on_time", "late", "dropped",
                                                       "rejected", "failed"]),
        "arrival_s": arrival, "start_s": arrival, "finish_s": arrival + lat / 1e3,
        "deadline_s": arrival + 1.0, "predicted_ms": np.nan})


def test_percentiles_count_drops_as_misses():
    # Ten requests: eight served at 10..80 ms, one dropped, one rejected.
    lat = [10, 20, 30, 40, 50, 60, 70, 80, None, None]
    st = ["on_time"] * 7 + ["late"] + ["dropped", "rejected"]
    df = _frame(st, lat)
    served = summarize(df, duration_s=1.0)["by_class"]["high"]
    # Over completed requests only, dropping flatters the tail: p90 is 73 ms.
    assert served["p90_ms"] == pytest.approx(np.percentile(lat[:8], 90))
    slo = slo_percentiles(df)
    assert slo["served"] == 8 and slo["count"] == 10
    assert slo["slo_attainment"] == pytest.approx(0.7)
    # Counted as never served: the 50th percentile of ten values, two of them infinite,
    # lies between the 5th and 6th served ones; p90 and p99 are unbounded.
    assert slo["p50_ms"] == pytest.approx(np.percentile(lat[:8] + [1e12, 1e12], 50))
    assert slo["p50_ms"] == pytest.approx(55.0)
    assert slo["p90_ms"] is None and slo["p99_ms"] is None
    # With nothing dropped both views agree.
    full = _frame(["on_time"] * 8, lat[:8])
    assert slo_percentiles(full)["p90_ms"] == pytest.approx(
        summarize(full, duration_s=1.0)["by_class"]["high"]["p90_ms"])


def test_per_model_breakdown_weighted_fairness_and_arrival_window_goodput():
    st = ["on_time", "on_time", "dropped", "on_time", "late", "on_time"]
    df = _frame(st, [10, 10, None, 10, 10, 10], priorities=["high", "high", "low", "low",
                                                           "low", "low"],
                models=["a", "a", "a", "b", "b", "b"], arrivals=[0, 1, 2, 3, 4, 5])
    view = summarize(df, duration_s=20.0)["slo"]
    a, b = view["by_model"]["a"], view["by_model"]["b"]
    assert a["count"] == 3 and a["by_class"]["high"]["violation_rate"] == 0.0
    assert a["by_class"]["low"] == {"count": 1, "violation_rate": 1.0}
    assert b["by_class"]["low"]["violation_rate"] == pytest.approx(1 / 3)
    # groups (a,high) 2 of 2, (a,low) 0 of 1, (b,low) 2 of 3 on time
    want = weighted_jain([1.0, 0.0, 2 / 3], [2, 1, 3])
    assert view["jain_model_class"] == pytest.approx(want)
    assert want == pytest.approx((2 + 0 + 2) ** 2 / (6 * (2 + 0 + 4 / 3)))
    # four on time over the 5 s arrival window, not the 20 s the run lasted
    assert view["arrival_window_s"] == 5.0
    assert view["goodput_arrival_rps"] == pytest.approx(0.8)
    assert weighted_jain([0.5, 0.5], [1, 9]) == pytest.approx(1.0)
    assert slo_view(df, 20.0)["run_span_s"] == 20.0
