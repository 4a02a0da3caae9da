"""A run's measurement window starts at its workload's time origin: a trace used as given
is measured from its first request, so shifting every time in the file changes no metric;
a generated workload starts at 0 and its summary is what it was. The replay flags count
from the same origin: --rate/--load scale the trace's own span (first to last request)
and --duration keeps its first D seconds, so a shifted file gives the shifted requests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from strait_sim.cli.workload_options import workload_from_options
from strait_sim.engine.simulator import SimConfig
from strait_sim.errors import UserError
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
    """A rate scale of 1e-9 keeps none of the 200 requests of a trace starting at 10 s;
    the run ends at 0, before the origin: the window is empty (0 s, no rates), not -10 s.
    (--duration can no longer replay nothing: it counts from the first request.)"""
    wl = workload_from_options({"trace": _trace(tmp_path / "t.csv", 0.0),
                                "rate_scale": 1e-9}, synthetic_bundle)
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


# -- the replay flags count from the same origin ----------------------------------------


def _spanned_trace(path, shift_s: float, n: int = 200) -> str:
    """``n`` requests from exactly 10 s to exactly 50 s (plus ``shift_s``), absolute
    deadlines, on the 1/1024 s grid: the trace's own span is 40 s, so ``--rate 20`` asks
    for a time scale of 200 / (20 x 40) = 0.25, exact in binary, and the shifted replay's
    times are the near one's plus 250 s, bit for bit."""
    rng = np.random.default_rng(11)
    ticks = np.sort(rng.integers(0, int(40 / TICK), n))
    ticks[0], ticks[-1] = 0, int(40 / TICK)
    t = 10.0 + shift_s + ticks * TICK
    rows = [f"{a!r},{a + 0.25 + (i % 7) / 64!r}" for i, a in enumerate(t.tolist())]
    path.write_text("arrival_s,deadline_s\n" + "\n".join(rows) + "\n")
    return str(path)


def _stream(wl, bundle, seed: int = 5) -> dict[str, np.ndarray]:
    chunks = [c for c in wl.chunks(bundle, seed) if len(c)]
    if not chunks:
        return {k: np.empty(0) for k in ("arrival", "deadline", "model", "priority", "items")}
    return {"arrival": np.concatenate([c.arrival_s for c in chunks]),
            "deadline": np.concatenate([c.deadline_s for c in chunks]),
            "model": np.concatenate([c.model for c in chunks]),
            "priority": np.concatenate([c.priority for c in chunks]),
            "items": np.concatenate([c.items for c in chunks])}


@pytest.mark.parametrize("opts", [
    {"rate": 20.0},
    {"load": 0.6},
    {"duration": 20.0},
    {"rate": 20.0, "duration": 5.0},
    {"load": 0.6, "duration": 5.0},
    {"time_scale": 0.5, "duration": 12.0},
    {"rate": 40.0, "rate_scale": 2.0},
    {"rate": 20.0, "rate_scale": 0.5, "duration": 6.0},
], ids=lambda o: ",".join(f"{k}={v:g}" for k, v in o.items()))
def test_replay_flags_are_shift_invariant(synthetic_bundle, tmp_path, opts):
    """--rate, --load and --duration on a trace replayed as given count from its first
    request: shifting the file by 1,000 s shifts the requests (by 1,000 s x the time
    scale) and changes nothing else. The bug: the time scale came from the span 0..last
    (1,050 s instead of 40 s, 26x too fast for the shifted file) and --duration counted
    from 0 (--duration 20 on the shifted file replayed nothing)."""
    built = {}
    for shift in (0.0, 1000.0):
        path = _spanned_trace(tmp_path / f"t{shift:g}.csv", shift)
        wl = workload_from_options({"trace": path, **opts}, synthetic_bundle, gpus=1)
        built[shift] = wl, _stream(wl, synthetic_bundle)
    (near, a), (far, b) = built[0.0], built[1000.0]
    assert far.time_scale == near.time_scale
    assert far.span_s == near.span_s == 40.0  # the trace's own span: first to last request
    assert far.expected_count() == near.expected_count()  # the progress bar's estimate
    moved = 1000.0 * near.time_scale
    assert far.time_origin_s() - near.time_origin_s() == pytest.approx(moved, abs=1e-9)
    assert len(a["arrival"]) == len(b["arrival"]) > 0
    np.testing.assert_allclose(b["arrival"] - moved, a["arrival"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(b["deadline"] - moved, a["deadline"], rtol=0, atol=1e-9)
    for key in ("model", "priority", "items"):
        np.testing.assert_array_equal(b[key], a[key])


def test_rate_and_duration_of_a_replay_as_given(synthetic_bundle, tmp_path):
    """What the flags mean, on the shifted file alone: --rate R replays the trace's
    requests at R per second of its own span (rows / (last - first)); --duration D keeps
    the requests of its first D seconds (after scaling)."""
    path = _spanned_trace(tmp_path / "t.csv", 1000.0)
    wl = workload_from_options({"trace": path, "rate": 20.0}, synthetic_bundle)
    arr = _stream(wl, synthetic_bundle)["arrival"]
    assert len(arr) == 200 and len(arr) / (arr[-1] - arr[0]) == pytest.approx(20.0)
    assert arr[0] == wl.time_origin_s() == 1010.0 * 0.25  # times stay as given, scaled
    raw = np.array([float(line.split(",")[0])
                    for line in (tmp_path / "t.csv").read_text().splitlines()[1:]])
    for opts, cut in (({"duration": 20.0}, 1030.0), ({"duration": 6.0, "time_scale": 0.5},
                                                      1022.0)):
        wl = workload_from_options({"trace": path, **opts}, synthetic_bundle)
        got = _stream(wl, synthetic_bundle)["arrival"]
        assert len(got) == int((raw < cut).sum()) > 0, opts


def test_a_single_instant_trace_cannot_be_rate_scaled(synthetic_bundle, tmp_path):
    """Requests all at 100 s have no span to scale (before: 100 s counted from 0)."""
    path = tmp_path / "one.csv"
    path.write_text("arrival_s\n100\n100\n")
    with pytest.raises(UserError, match="one instant"):
        workload_from_options({"trace": str(path), "rate": 5.0}, synthetic_bundle)


def test_plan_pins_the_same_time_scale_for_a_shifted_trace(tmp_path):
    """plan turns --load into a time scale through the same code: the shifted file gets
    the same one."""
    from strait_sim.plan.evaluate import fixed_workload

    scales = {shift: fixed_workload({"trace": _spanned_trace(tmp_path / f"t{shift:g}.csv",
                                                             shift), "load": 3.0},
                                    "synthetic-tiny", max_batch=8)["time_scale"]
              for shift in (0.0, 1000.0)}
    assert scales[0.0] == scales[1000.0]
