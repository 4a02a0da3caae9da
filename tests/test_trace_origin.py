"""A run's measurement window starts at its workload's time origin: a trace used as given
is measured from its first request, so shifting every time in the file changes no metric;
a generated workload starts at 0 and its summary is what it was."""

from __future__ import annotations

import math

import numpy as np
import pytest

from strait_sim.cli.workload_options import workload_from_options
from strait_sim.engine.simulator import SimConfig
from strait_sim.experiment import run_simulation
from strait_sim.policies.registry import make_policy
from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

# Arrivals on a 1/1024 s grid: adding 1000 s is exact, so the two files hold the same
# request stream up to the shift, bit for bit.
TICK = 1 / 1024


def _trace(path, shift_s: float, n: int = 200) -> str:
    """``n`` requests between 10 s and 50 s (plus ``shift_s``), absolute deadlines."""
    rng = np.random.default_rng(7)
    ticks = np.sort(rng.integers(0, int(40 / TICK), n))
    ticks[0] = 0
    t = 10.0 + shift_s + ticks * TICK
    rows = [f"{a!r},{a + 0.25!r}" for a in t.tolist()]
    path.write_text("arrival_s,deadline_s\n" + "\n".join(rows) + "\n")
    return str(path)


def _rates(summary: dict) -> dict[str, float]:
    out = {"duration_s": summary["duration_s"], "busy": summary["gpu_busy_fraction"],
           "goodput": summary["overall"]["goodput_rps"],
           "slo_goodput": summary["slo"]["goodput_arrival_rps"]}
    out.update({f"goodput_{c}": summary["by_class"][c]["goodput_rps"] for c in ("high", "low")})
    return out


@pytest.mark.parametrize("policy,gpus,nodes,streamed", [
    ("fifo", 1, 1, False), ("fifo", 1, 1, True), ("strait", 2, 1, False),
    ("edf", 1, 2, False)])
def test_shifting_a_trace_changes_no_metric(synthetic_bundle, tmp_path, policy, gpus,
                                            nodes, streamed):
    """The bug: a trace starting at 1,010 s had its goodput and busy fraction divided by
    1,050 s instead of 40 s (0.19 req/s against 3.98 for the same requests at 10 s)."""
    summaries = {}
    for shift in (0.0, 1000.0):
        wl = workload_from_options({"trace": _trace(tmp_path / f"t{shift:g}.csv", shift)},
                                   synthetic_bundle)
        cfg = SimConfig(gpus=gpus, slots=2, max_batch=4, seed=1, nodes=nodes)
        out = tmp_path / f"run{shift:g}" if streamed else None
        summaries[shift] = run_simulation(synthetic_bundle, wl, make_policy(policy), cfg,
                                          out=out).summary
    near, far = _rates(summaries[0.0]), _rates(summaries[1000.0])
    for key, value in near.items():
        assert far[key] == pytest.approx(value, rel=1e-9), key
    assert near["duration_s"] < 45.0 and near["goodput"] > 1.0  # measured from 10 s
    for shift, s in summaries.items():
        assert s["window_start_s"] == 10.0 + shift  # the first arrival, recorded
        assert s["engine"]["end_s"] == pytest.approx(s["duration_s"] + 10.0 + shift,
                                                     rel=1e-12)


def test_time_origin_of_a_replay(synthetic_bundle, tmp_path):
    """As given: the first row on the run's clock (time-scaled, and still the first row
    when a rate scale below 1 may drop it); a chosen window starts at 0."""
    path = _trace(tmp_path / "t.csv", 90.0)

    def origin(**opts: object) -> float:
        return workload_from_options({"trace": path, **opts},
                                     synthetic_bundle).time_origin_s()

    assert origin() == 100.0
    assert origin(time_scale=0.5) == 50.0
    assert origin(rate_scale=0.25) == 100.0
    assert origin(window="100:") == 0.0
    assert origin(window="0:") == 0.0  # the window chosen starts at 0: measured from 0
    conv = workload_from_options({"workload": "azure-conv"}, synthetic_bundle)
    assert conv.time_origin_s() == 0.0  # Azure times count from the file's first stamp


def test_a_replay_of_nothing_has_an_empty_window(synthetic_bundle, tmp_path):
    """--duration 5 on a trace starting at 10 s replays no request; the run ends at 0,
    before the origin: the window is empty (0 s, no rates), not -10 s."""
    wl = workload_from_options({"trace": _trace(tmp_path / "t.csv", 0.0), "duration": 5.0},
                               synthetic_bundle)
    s = run_simulation(synthetic_bundle, wl, make_policy("fifo"),
                       SimConfig(gpus=1, slots=2, max_batch=4, seed=1)).summary
    assert s["requests"] == 0 and s["duration_s"] == 0.0
    assert s["gpu_busy_fraction"] is None and s["overall"]["goodput_rps"] is None


def test_generated_workload_is_measured_from_zero(synthetic_bundle):
    """Poisson arrivals start at 0: the span is the run's end, as before, and the summary
    gains no key (its bytes are those of earlier versions; this passes on both)."""
    wl = BasicPoissonWorkload(synthetic_bundle.model_names, rate=200.0, duration_s=3.0,
                              hp_fraction=0.3, slo=4.0)
    res = run_simulation(synthetic_bundle, wl, make_policy("fifo"),
                         SimConfig(gpus=1, slots=2, max_batch=4, seed=2))
    s = res.summary
    assert "window_start_s" not in s
    assert s["duration_s"] == s["engine"]["end_s"] == s["slo"]["run_span_s"]
    assert s["overall"]["goodput_rps"] == s["overall"]["on_time"] / s["engine"]["end_s"]
    assert 0.0 < s["gpu_busy_fraction"] <= 1.0 and not math.isnan(s["gpu_busy_fraction"])
