"""Preemption at kernel granularity keeps completed kernels' work; restart loses it all."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from strait_sim.engine.simulator import SimConfig, simulate
from strait_sim.policies.base import Dispatch, Policy, Preempt, WakeAt
from strait_sim.profile_bundle import read_bundle_dir
from strait_sim.synthetic import SyntheticSpec, make_synthetic_bundle
from strait_sim.truth.kernel_restore import DEFAULT_KERNELS, KernelRestore
from strait_sim.workloads.poisson_basic import BasicPoissonWorkload


@pytest.fixture(scope="module")
def const_bundle(tmp_path_factory):
    """One model, exactly 10 ms at batch 1 (noise 0), no kernels.csv."""
    spec = SyntheticSpec(models={"const": (10.0, 0.0)}, io_bytes={"const": (1000, 1000)},
                         batches=(1, 2), reps=4, noise_cv=0.0)
    return read_bundle_dir(make_synthetic_bundle(tmp_path_factory.mktemp("k") /
                                                 "synthetic-k", spec))


class _PreemptOnce(Policy):
    """Dispatch the first request, preempt it 3.3 ms later, dispatch it again."""

    name = "preempt-once"

    def __init__(self, restore: str) -> None:
        self.restore = restore
        self.held = []
        self.done = False

    def on_arrival(self, request, view):
        if self.done:  # later requests: served plainly
            return [Dispatch(*view.free_slots()[0], (request,))]
        return [Dispatch(0, 0, (request,)), WakeAt(view.now + 3.3e-3)]

    def on_timer(self, view):
        if self.done or not view.running():
            return ()
        self.done = True
        return [Preempt(0, 0, 0.0, self.restore)]

    def on_preempted(self, batch, view):
        return [Dispatch(0, 0, batch.requests)]

    def waiting(self) -> int:
        return 0


@pytest.mark.parametrize("restore, expected_ms", [
    # 3.3 ms done of 10 ms = 0.33 -> kernels of 1/50 each: 16 completed (0.32) are kept,
    # so 6.8 ms remain: the request ends at 3.3 + 6.8 = 10.1 ms.
    ("kernel", 3.3 + 10.0 * (1 - 16 / DEFAULT_KERNELS)),
    ("restart", 3.3 + 10.0),
])
def test_kernel_restore_keeps_completed_kernels(const_bundle, restore, expected_ms):
    wl = BasicPoissonWorkload(("const",), rate=10.0, duration_s=10.0, hp_fraction=0.0,
                              slo=100.0, max_requests=1)
    cfg = SimConfig(gpus=1, slots=1, max_batch=1, seed=1, interference=False, pcie=False)
    out = simulate(const_bundle, wl, _PreemptOnce(restore), cfg)
    df = out.records.to_frame(out.models)
    assert len(df) == 1 and int(df["preemptions"][0]) == 1
    latency_ms = (df["finish_s"][0] - df["arrival_s"][0]) * 1e3
    assert latency_ms == pytest.approx(expected_ms, abs=1e-6)
    lost_ms = out.lost_work_s * 1e3
    assert lost_ms == pytest.approx(3.3 - (3.2 if restore == "kernel" else 0.0), abs=1e-6)


def test_kernel_sequence_from_kernels_csv():
    """With kernels.csv the kept work ends at a boundary of the measured sequence (the
    nearest measured batch size), and the kernel in flight is what is lost."""
    kernels = pd.DataFrame({"model": ["m"] * 4, "batch": [2] * 4, "seq": [0, 1, 2, 3],
                            "name": ["k"] * 4, "start_us": [0, 10, 40, 50],
                            "duration_us": [10.0, 30.0, 10.0, 50.0]})
    kr = KernelRestore(SimpleNamespace(kernels=kernels))
    assert kr.kernel_ends("m", 1) == pytest.approx([0.1, 0.4, 0.5, 1.0])
    assert kr.kept_fraction("m", 1, 0.45) == pytest.approx(0.4)  # third kernel lost
    assert kr.kept_fraction("m", 4, 0.39) == pytest.approx(0.1)
    assert kr.kept_fraction("m", 2, 0.0) == 0.0
    assert kr.kept_fraction("m", 2, 1.0) == pytest.approx(1.0)
    assert kr.kept_fraction("other", 1, 0.5) == pytest.approx(0.5)  # 50 equal kernels


class _PreemptWithCost(_PreemptOnce):
    """Preempt at 3.3 ms with a 0.5 ms reset; dispatch again once the slot is free."""

    def __init__(self) -> None:
        super().__init__("restart")

    def on_timer(self, view):
        if self.held and view.free_slots():
            held, self.held = self.held, []
            return [Dispatch(0, 0, held)]
        if self.done or not view.running():
            return ()
        self.done = True
        return [Preempt(0, 0, 0.5, "restart")]

    def on_preempted(self, batch, view):
        self.held = list(batch.requests)
        return ()


def test_the_timeline_draws_a_reset_from_the_preemption(const_bundle):
    """The slot's 'reset' slice runs from the preemption to the end of its cost (it was
    drawn from the preempted batch's dispatch, covering the whole preempted slice)."""
    wl = BasicPoissonWorkload(("const",), rate=10.0, duration_s=10.0, hp_fraction=0.0,
                              slo=100.0, max_requests=1)
    cfg = SimConfig(gpus=1, slots=1, max_batch=1, seed=1, interference=False, pcie=False,
                    record_timeline=True)
    out = simulate(const_bundle, wl, _PreemptWithCost(), cfg)
    slices = {name.split()[0]: (start, end) for _, track, name, start, end, _ in
              out.timeline.events if track == "slot 0"}
    arrival = out.records.to_frame(out.models)["arrival_s"][0]
    preempted_at = arrival + 3.3e-3
    assert slices["PREEMPTED"] == pytest.approx((arrival, preempted_at), abs=1e-9)
    assert slices["reset"] == pytest.approx((preempted_at, preempted_at + 0.5e-3), abs=1e-9)
    assert slices["const"][0] == pytest.approx(preempted_at + 0.5e-3, abs=1e-9)
