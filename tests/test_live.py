"""Live executor on the torch-cpu backend with tiny zoo models (a few seconds per run).

The profile is a synthetic fixture whose model names are the zoo's tiny models: the
executor needs the profile for deadlines and the view's phase estimates, and the backend
needs zoo models to run. No figure in it is a measurement; these tests check the
machinery (every request ends once, results load as simulated ones, failures, Ctrl-C).
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading

import numpy as np
import pytest
from conftest import requires_gpu

from strait_sim.devices.backend import union_length
from strait_sim.engine.simulator import SimConfig
from strait_sim.errors import UserError
from strait_sim.live.busy_check import DeviceBusyError, check_device_idle
from strait_sim.live.runner import LiveOptions, run_live
from strait_sim.policies.base import Preempt
from strait_sim.policies.fifo import FifoPolicy
from strait_sim.profile_bundle import read_bundle_dir
from strait_sim.requests import HIGH, LOW, RequestChunk
from strait_sim.results import load_results
from strait_sim.synthetic import SyntheticSpec, make_synthetic_bundle
from strait_sim.workloads.base import ClosedLoopSession, Workload
from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

MODELS = ("tiny_mlp", "tiny_cnn")


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    spec = SyntheticSpec(models={"tiny_mlp": (0.15, 0.03), "tiny_cnn": (8.0, 0.6)},
                         io_bytes={"tiny_mlp": (1024, 40), "tiny_cnn": (12288, 40)},
                         reps=4, offsets_frac=(0.0,), batches=(1, 2, 4))
    path = make_synthetic_bundle(tmp_path_factory.mktemp("live") / "bundle", spec,
                                 name="synthetic-live")
    return read_bundle_dir(path, name="synthetic-live")


@pytest.fixture(scope="module")
def cpu_backend():
    """One backend for the module (building and warming it costs a few hundred ms)."""
    from strait_sim.profiler.backends import make_backend

    backend = make_backend("torch-cpu", streams=2, models=list(MODELS), warmup=1)
    yield backend
    backend.close()


def _workload(rate=120.0, duration=1.2, models=MODELS):
    return BasicPoissonWorkload(models, rate=rate, duration_s=duration, hp_fraction=0.3, slo=6)


def _opts(backend, **kw):
    return LiveOptions(backend=backend, force=True, quiet=True, **kw)


class Recording(FifoPolicy):
    """FIFO that keeps what the driver told it."""

    name = "fifo"

    def bind(self, ctx):
        super().bind(ctx)
        self.completed = []

    def on_completion(self, batch, view):
        self.completed.append(batch)
        return super().on_completion(batch, view)


def test_short_live_run_every_request_ends_once(tiny_bundle, cpu_backend, tmp_path):
    wl = _workload()
    expected = sum(len(c) for c in wl.chunks(tiny_bundle, 0))
    policy = Recording()
    result = run_live(tiny_bundle, wl, policy, SimConfig(slots=2, max_batch=4),
                      _opts(cpu_backend))
    df = result.requests
    assert len(df) == expected > 50
    assert df["id"].tolist() == list(range(expected))
    assert set(df["status"].astype(str)) <= {"on_time", "late"}
    assert (df["start_s"] >= df["arrival_s"]).all()
    assert (df["finish_s"] > df["start_s"]).all()
    assert ((df["finish_s"] - df["start_s"]) * 1e3 >= df["compute_ms"] - 1e-3).all()
    # every request served by exactly one completed batch
    served = [r.id for b in policy.completed for r in b.requests]
    assert sorted(served) == list(range(expected))
    for b in policy.completed:
        assert b.dispatch_s <= b.compute_start_s <= b.compute_end_s <= b.finish_s
        assert not b.failed
        for co in b.co_runs:
            assert 0 < co.overlap_ms <= b.compute_ms + 1e-6
    s = result.summary
    assert s["mode"] == "live" and s["requests"] == expected
    ex = s["executor"]
    assert ex["backend"] == "torch-cpu" and not ex["interrupted"]
    assert ex["dispatch_delay_ms"]["count"] == len(policy.completed)
    assert ex["release_lag_ms"]["count"] == expected
    assert ex["policy_ms"]["arrival"]["count"] == expected
    assert 0 < s["gpu_busy_fraction"] <= 1
    cvp = ex["compute_vs_profile"]
    assert sum(r.get("alone", {}).get("count", 0) + r.get("co_run", {}).get("count", 0)
               for r in cvp.values()) == len(policy.completed)
    # results load with the same code as simulated ones
    out = result.write(tmp_path / "run")
    back = load_results(out)
    assert back.summary["mode"] == "live"
    assert back.requests["status"].astype(str).tolist() == df["status"].astype(str).tolist()
    np.testing.assert_array_equal(back.requests["finish_s"], df["finish_s"])
    json.loads((out / "summary.json").read_text())  # strict JSON


def test_co_runs_come_from_measured_overlaps(tiny_bundle, cpu_backend):
    policy = Recording()
    run_live(tiny_bundle, _workload(rate=250, duration=1.0, models=("tiny_cnn",)), policy,
             SimConfig(slots=2, max_batch=2), _opts(cpu_backend))
    overlapped = [b for b in policy.completed if b.co_runs]
    assert overlapped, "two slots under load must overlap at least once"
    # batches on the two slots that overlap in time report each other
    by_id = {b.batch_id: b for b in policy.completed}
    for b in overlapped:
        for co in b.co_runs:
            assert co.model == "tiny_cnn"
            assert co.overlap_ms <= b.compute_ms + 1e-6
    assert len(by_id) == len(policy.completed)


def test_injected_failure_marks_right_requests_and_goes_on(tiny_bundle, cpu_backend):
    from strait_sim.profiler.faults import FaultInjectingBackend, fail_indices

    faulty = FaultInjectingBackend(cpu_backend, fail_indices(2, 5), fail_delay_s=0.002)
    policy = Recording()
    result = run_live(tiny_bundle, _workload(), policy, SimConfig(slots=2, max_batch=4),
                      _opts(faulty))
    df = result.requests
    failures = result.summary["executor"]["failures"]
    assert [f["batch_id"] for f in failures] == [2, 5]
    bad = {rid for f in failures for rid in f["requests"]}
    status = df.set_index("id")["status"].astype(str)
    assert set(status[status == "failed"].index) == bad
    assert set(status.drop(index=list(bad))) <= {"on_time", "late"}
    told = [b for b in policy.completed if b.failed]
    assert [b.batch_id for b in told] == [2, 5] and all("injected" in b.error for b in told)
    # the run went on after the failures
    assert max(b.batch_id for b in policy.completed) > 5
    assert result.summary["by_class"]["high"]["failed"] + \
        result.summary["by_class"]["low"]["failed"] == len(bad)


def test_synchronous_submit_error_fails_only_that_batch(tiny_bundle, cpu_backend):
    from strait_sim.profiler.backend import BackendError
    from strait_sim.profiler.faults import FaultInjectingBackend

    class RaisingOnThird(FaultInjectingBackend):
        def submit(self, model, batch, stream, on_done=None):
            self.submits += 1
            if self.submits == 3:
                raise BackendError("CUDA error: out of memory (simulated at submit)")
            return self.inner.submit(model, batch, stream, on_done)

    result = run_live(tiny_bundle, _workload(duration=0.8), FifoPolicy(),
                      SimConfig(slots=2, max_batch=4), _opts(RaisingOnThird(cpu_backend)))
    failures = result.summary["executor"]["failures"]
    assert [f["batch_id"] for f in failures] == [2]
    assert "out of memory" in failures[0]["error"]
    status = result.requests.set_index("id")["status"].astype(str)
    assert set(status[status == "failed"].index) == set(failures[0]["requests"])
    assert (status == "on_time").sum() + (status == "late").sum() == len(status) - len(
        failures[0]["requests"])


def test_interrupt_keeps_every_result_so_far(tiny_bundle, cpu_backend, tmp_path):
    from strait_sim.profiler.faults import FaultInjectingBackend

    stopping = FaultInjectingBackend(cpu_backend, interrupt_after=8)
    result = run_live(tiny_bundle, _workload(), FifoPolicy(), SimConfig(slots=2, max_batch=4),
                      _opts(stopping))
    df = result.requests
    ex = result.summary["executor"]
    assert ex["interrupted"]
    assert 0 < len(df) < sum(len(c) for c in _workload().chunks(tiny_bundle, 0))
    assert "pending" not in set(df["status"].astype(str))
    assert ex["unfinished_marked_failed"] == int((df["status"] == "failed").sum()) > 0
    assert int(df["status"].isin(["on_time", "late"]).sum()) > 0  # served before the stop
    assert ex["abandoned_jobs"] == 0  # the drain waited for real jobs only
    load_results(result.write(tmp_path / "stopped"))


class _SigintOnFirstArrival(FifoPolicy):
    name = "fifo"

    def on_arrival(self, request, view):
        if request.id == 0:
            threading.Timer(0.4, os.kill, (os.getpid(), signal.SIGINT)).start()
        return super().on_arrival(request, view)


def test_real_ctrl_c_stops_the_run_and_restores_the_handler(tiny_bundle, cpu_backend):
    before = signal.getsignal(signal.SIGINT)
    result = run_live(tiny_bundle, _workload(duration=5.0), _SigintOnFirstArrival(),
                      SimConfig(slots=2, max_batch=4), _opts(cpu_backend))
    assert signal.getsignal(signal.SIGINT) is before
    ex = result.summary["executor"]
    assert ex["interrupted"] and ex["wall_s"] < 3.0
    assert "pending" not in set(result.requests["status"].astype(str))


class _PreemptLow(FifoPolicy):
    """FIFO that preempts a running low-priority batch whenever a high one arrives (not
    only when the high one finds no slot: on a fast CPU both slots are rarely busy at
    once, and a run of a second then saw one or two preemptions, sometimes none)."""

    name = "fifo"

    def on_arrival(self, request, view):
        actions = list(super().on_arrival(request, view))
        if request.priority == HIGH:
            lows = [b for b in view.running() if b.priority == LOW]
            if lows:
                actions.append(Preempt(0, lows[0].slot, cost_ms=1.0))
        return actions


def test_preemption_resets_the_slot_and_requests_still_end_once(tiny_bundle, cpu_backend):
    result = run_live(tiny_bundle, _workload(rate=800, duration=1.0, models=("tiny_cnn",)),
                      _PreemptLow(), SimConfig(slots=2, max_batch=2), _opts(cpu_backend))
    df = result.requests
    assert result.summary["engine"]["preemptions"] > 0
    assert int(df["preemptions"].sum()) > 0
    assert set(df["status"].astype(str)) <= {"on_time", "late"}


class _Clients(Workload):
    """Two closed-loop clients, a request each 5 ms after the last ended, for 0.6 s."""

    kind = "test-closed"
    closed_loop = True
    models = ("tiny_mlp",)

    def chunks(self, profile, seed):
        raise TypeError("closed loop")

    def describe(self):
        return {"kind": self.kind}

    def session(self, profile, seed):
        def one(t):
            return RequestChunk(self.models, np.array([t]), np.zeros(1, np.int16),
                                np.array([LOW], np.int8), np.array([t + 0.05]),
                                np.ones(1, np.int32))

        class S(ClosedLoopSession):
            def first_requests(self):
                c = one(0.0)
                return RequestChunk(c.models, np.array([0.0, 0.001]), np.zeros(2, np.int16),
                                    np.array([LOW, HIGH], np.int8), np.array([0.05, 0.051]),
                                    np.ones(2, np.int32))

            def next_after(self, request, end_s):
                return one(end_s + 0.005) if end_s + 0.005 < 0.6 else None

        return S()


def test_closed_loop_session_is_driven_live(tiny_bundle, cpu_backend):
    result = run_live(tiny_bundle, _Clients(), FifoPolicy(), SimConfig(slots=2, max_batch=2),
                      _opts(cpu_backend))
    df = result.requests
    assert len(df) > 20
    assert set(df["status"].astype(str)) <= {"on_time", "late"}
    assert df["arrival_s"].max() < 0.6


def test_busy_device_is_refused_unless_forced(monkeypatch, tiny_bundle):
    from strait_sim.live import busy_check

    monkeypatch.setattr(busy_check, "cpu_utilisation", lambda: 0.9)
    with pytest.raises(DeviceBusyError, match=r"CPU 90% busy over 0.5 s.*--force"):
        check_device_idle("cpu")
    obs = check_device_idle("cpu", force=True)
    assert obs["busy_reasons"] and not obs["refused"]
    with pytest.raises(DeviceBusyError):
        run_live(tiny_bundle, _workload(), FifoPolicy(), SimConfig(),
                 LiveOptions(cpu=True, quiet=True))
    # a load average left by an earlier run does not refuse an idle CPU
    monkeypatch.setattr(busy_check, "cpu_utilisation", lambda: 0.0)
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    obs = check_device_idle("cpu")
    assert obs["busy"] == 0.0 and obs["load1"] == 64.0 and not obs["busy_reasons"]
    # without /proc/stat the load average decides
    monkeypatch.setattr(busy_check, "cpu_utilisation", lambda: None)
    with pytest.raises(DeviceBusyError, match="load average 64.00 on"):
        check_device_idle("cpu")


def test_cpu_utilisation_is_a_fraction_where_proc_stat_exists():
    from strait_sim.live.busy_check import cpu_utilisation

    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat on this platform")
    util = cpu_utilisation(0.2)
    assert util is not None and 0.0 <= util <= 1.0


def test_bad_live_setups_are_user_errors(tiny_bundle, synthetic_bundle):
    with pytest.raises(UserError, match="exactly one"):
        run_live(tiny_bundle, _workload(), FifoPolicy(), SimConfig(), LiveOptions(quiet=True))
    with pytest.raises(UserError, match="--gpus must be 1"):
        run_live(tiny_bundle, _workload(), FifoPolicy(), SimConfig(gpus=2),
                 LiveOptions(cpu=True, force=True, quiet=True))
    wl = BasicPoissonWorkload(("synth_small",), rate=10, duration_s=1)
    with pytest.raises(UserError, match="model zoo"):
        run_live(synthetic_bundle, wl, FifoPolicy(), SimConfig(),
                 LiveOptions(cpu=True, force=True, quiet=True))


def test_union_length():
    assert union_length([]) == 0
    assert math.isclose(union_length([(0, 1), (0.5, 2), (3, 4), (3.2, 3.5)]), 3.0)


@requires_gpu
def test_live_run_on_cuda(tiny_bundle):
    result = run_live(tiny_bundle, _workload(duration=1.0), FifoPolicy(),
                      SimConfig(slots=2, max_batch=4),
                      LiveOptions(gpu=0, force=True, quiet=True))
    assert result.summary["executor"]["backend"] == "torch-cuda"
    assert set(result.requests["status"].astype(str)) <= {"on_time", "late"}


def test_a_co_runner_copying_back_overlaps_only_up_to_its_compute_end():
    """A batch that ends while its co-runner is already in its D2H copy overlapped it up to
    the co-runner's observed compute end, not to its own end (the live co-runs once
    counted the copy too: a live run's overlaps then differed from the simulation's)."""
    from strait_sim.devices.backend import BackendDevice
    from strait_sim.driver.batch import Batch
    from strait_sim.requests import Request

    def batch(bid: int) -> Batch:
        return Batch(bid, 0, bid, "m", 1, (Request(bid, "m", LOW, 0.0, 1.0, 1),), 0.0, None)

    dev = object.__new__(BackendDevice)  # only what _co_runs reads
    dev.intervals, dev.compute_start, dev.reports_phases = [], {}, True
    done, copying, computing = batch(0), batch(1), batch(2)
    done._compute_start_s, done._compute_end_s = 1.0, 2.0
    dev.inflight = {copying: None, computing: None}
    dev.compute_start = {1: 0.5, 2: 1.5}
    copying._phase, copying._compute_end_s = "d2h", 1.8
    computing._phase = "compute"
    runs = dev._co_runs(done)
    assert [round(c.overlap_ms, 9) for c in runs] == [800.0, 500.0]


def test_a_trace_replayed_live_starts_at_its_first_request(tiny_bundle, cpu_backend, tmp_path):
    """A trace used as given whose first request is at 30 s: the simulation measures it
    from there, and the live clock once waited the 30 s of nothing first (1,000 s for a
    trace at 1,000 s). Now the live clock starts at the trace's origin."""
    from strait_sim.cli.workload_options import workload_from_options

    times = [30.0 + 0.01 * k for k in range(20)]
    path = tmp_path / "late.csv"
    path.write_text("arrival_s,deadline_s\n" + "".join(f"{t!r},{t + 1.0!r}\n" for t in times))
    wl = workload_from_options({"trace": str(path)}, tiny_bundle)
    result = run_live(tiny_bundle, wl, FifoPolicy(), SimConfig(slots=2, max_batch=4),
                      _opts(cpu_backend))
    df = result.requests
    assert len(df) == 20 and set(df["status"].astype(str)) <= {"on_time", "late"}
    np.testing.assert_allclose(df["arrival_s"].to_numpy(), times)
    assert (df["start_s"] >= df["arrival_s"]).all()
    assert result.summary["executor"]["wall_s"] < 25  # not the 30 s before the first
    assert result.summary["window_start_s"] == 30.0
