"""The backend contract on torch-cpu (and torch-cuda where a GPU exists), and the zoo."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from conftest import cuda_available, requires_gpu

from strait_sim.errors import NoDeviceError, UnknownNameError, UserError
from strait_sim.profiler.backend import BackendError, PhaseTiming, TransferTiming
from strait_sim.profiler.backends import make_backend
from strait_sim.profiler.faults import FaultInjectingBackend, fail_indices, fail_models
from strait_sim.profiler.zoo import ZOO, ModelSpec, load_model_file, model_registry

TINY = ["tiny_cnn", "tiny_mlp", "tiny_bert"]


@pytest.fixture(scope="module")
def cpu_backend():
    backend = make_backend("torch-cpu", models=TINY, streams=2, threads_per_stream=1, warmup=1)
    yield backend
    backend.close()


@pytest.mark.parametrize("name", TINY)
def test_tiny_models_run_and_output_matches_spec(name: str) -> None:
    spec = ZOO[name]
    module = spec.build()
    x = spec.make_input(2, "fp32", torch.Generator().manual_seed(0))
    with torch.inference_mode():
        y = module(x)
    assert tuple(y.shape) == (2, *spec.item_output_shape)
    assert spec.input_bytes_per_item("fp32") == x[0].numel() * x.element_size()


def test_weights_are_deterministic_and_global_rng_untouched() -> None:
    state = torch.random.get_rng_state()
    a = ZOO["tiny_mlp"].build(seed=3)
    b = ZOO["tiny_mlp"].build(seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_submit_returns_ordered_phase_timing(cpu_backend) -> None:
    cpu_backend.prepare("tiny_cnn", 4)
    t_before = time.perf_counter()
    job = cpu_backend.submit("tiny_cnn", 4, stream=1)
    timing = job.result(timeout=30)
    assert job.done()
    assert isinstance(timing, PhaseTiming)
    assert t_before <= timing.h2d_start_s <= timing.compute_start_s <= timing.compute_end_s \
        <= timing.d2h_end_s <= time.perf_counter()
    assert timing.compute_ms > 0


def test_on_done_is_called_from_a_backend_thread(cpu_backend) -> None:
    seen = []
    done = threading.Event()

    def cb(job) -> None:
        seen.append((threading.current_thread().name, job.done()))
        done.set()

    cpu_backend.submit("tiny_mlp", 2, stream=0, on_done=cb)
    assert done.wait(30)
    assert seen[0][0].startswith("strait-cpu-stream-") and seen[0][1]


def test_streams_are_fifo_and_synchronize_waits(cpu_backend) -> None:
    jobs = [cpu_backend.submit("tiny_mlp", 1, stream=0) for _ in range(5)]
    cpu_backend.synchronize()
    assert all(j.done() for j in jobs)
    starts = [j.result().h2d_start_s for j in jobs]
    ends = [j.result().d2h_end_s for j in jobs]
    assert starts == sorted(starts)
    assert all(s >= e for s, e in zip(starts[1:], ends[:-1], strict=False))


def test_delay_postpones_the_next_job(cpu_backend) -> None:
    cpu_backend.synchronize()
    t0 = time.perf_counter()
    cpu_backend.enqueue_delay(1, 0.05)
    timing = cpu_backend.submit("tiny_mlp", 1, stream=1).result(timeout=30)
    assert timing.h2d_start_s - t0 >= 0.045


def test_transfer_times_a_copy(cpu_backend) -> None:
    timing = cpu_backend.transfer("h2d", 1 << 20, lane=0).result(timeout=30)
    assert isinstance(timing, TransferTiming) and timing.ms > 0
    with pytest.raises(UserError):
        cpu_backend.transfer("sideways", 10, lane=0)


def test_fault_injection_fails_the_chosen_batches(cpu_backend) -> None:
    faulty = FaultInjectingBackend(cpu_backend, fail_models("tiny_bert"), fail_delay_s=0.01)
    called = threading.Event()
    bad = faulty.submit("tiny_bert", 1, 0, on_done=lambda j: called.set())
    good = faulty.submit("tiny_mlp", 1, 1)
    with pytest.raises(BackendError, match="injected fault: tiny_bert"):
        bad.result(timeout=10)
    assert called.is_set() or called.wait(5)
    assert good.result(timeout=30).compute_ms > 0
    assert [f.model for f in faulty.failed] == ["tiny_bert"]

    by_index = FaultInjectingBackend(cpu_backend, fail_indices(1))
    jobs = [by_index.submit("tiny_mlp", 1, 0) for _ in range(3)]
    outcomes = []
    for j in jobs:
        try:
            j.result(timeout=30)
            outcomes.append("ok")
        except BackendError:
            outcomes.append("failed")
    assert outcomes == ["ok", "failed", "ok"]


def test_a_failing_forward_becomes_backend_error() -> None:
    class Boom(torch.nn.Module):
        def forward(self, x):  # noqa: ANN001, ANN201
            raise ValueError("boom")

    spec = ModelSpec("boom", Boom, (4,), item_output_shape=(4,))
    backend = make_backend("torch-cpu", models=[spec], streams=1, warmup=0)
    try:
        with pytest.raises(BackendError, match="boom"):
            backend.submit("boom", 1, 0).result(timeout=10)
    finally:
        backend.close()


def test_unknown_names_and_bad_values_are_user_errors(cpu_backend) -> None:
    with pytest.raises(UnknownNameError):
        make_backend("torch-opencl")
    with pytest.raises(UnknownNameError):
        cpu_backend.prepare("no_such_model", 1)
    with pytest.raises(UserError):
        make_backend("torch-cpu", models=TINY, precision="fp16")
    with pytest.raises(UserError):
        cpu_backend.submit("tiny_mlp", 1, stream=7)


@pytest.mark.skipif(cuda_available(), reason="this machine has a GPU")
def test_gpu_request_without_gpu_is_one_line_no_device_error() -> None:
    with pytest.raises(NoDeviceError) as info:
        make_backend("torch-cuda", device=0, models=TINY)
    assert "\n" not in str(info.value) and "GPU 0" in str(info.value)


def test_tensorrt_without_tensorrt_is_a_user_error() -> None:
    try:
        import tensorrt  # noqa: F401
    except Exception:
        with pytest.raises(UserError, match="tensorrt"):
            make_backend("tensorrt", device=0, models=TINY)
    else:
        pytest.skip("tensorrt is installed here")


def test_user_model_file(tmp_path) -> None:
    f = tmp_path / "my_models.py"
    f.write_text(
        "import torch\n"
        "from strait_sim.profiler.zoo import ModelSpec\n"
        "MODELS = [ModelSpec('my_linear', lambda: torch.nn.Linear(8, 3), (8,),"
        " item_output_shape=(3,))]\n")
    reg = model_registry([f])
    assert "my_linear" in reg and "resnet50" in reg
    backend = make_backend("torch-cpu", models=reg, streams=1, warmup=0)
    try:
        assert backend.submit("my_linear", 2, 0).result(timeout=10).compute_ms > 0
    finally:
        backend.close()
    bad = tmp_path / "bad.py"
    bad.write_text("MODELS = 3\n")
    with pytest.raises(UserError, match="bad.py: must define MODELS"):
        load_model_file(bad)


@requires_gpu
def test_cuda_backend_contract() -> None:
    backend = make_backend("torch-cuda", device=0, models=TINY, streams=2)
    try:
        a = backend.submit("tiny_cnn", 2, 0)
        b = backend.submit("tiny_bert", 2, 1)
        for job in (a, b):
            t = job.result(timeout=60)
            assert t.h2d_start_s <= t.compute_start_s <= t.compute_end_s <= t.d2h_end_s
            assert t.compute_ms > 0
        assert backend.transfer("d2h", 1 << 20, 0).result(timeout=60).ms > 0
        assert backend.device_info()["kind"] == "cuda"
    finally:
        backend.close()


@pytest.mark.parametrize(("cores", "streams", "threads", "oversubscribed"),
                         [(2, 2, 1, False), (8, 2, 4, False), (8, 3, 2, False),
                          (2, 3, 1, False), (1, 1, 1, False)])
def test_default_threads_never_exceed_the_cores(monkeypatch, cores, streams, threads,
                                                oversubscribed) -> None:
    # more OpenMP threads than cores make forward times depend on the other streams'
    # history (cpu_backend's docstring): the default shares the cores out instead
    from strait_sim.profiler import cpu_backend as cb

    monkeypatch.setattr(cb, "usable_cores", lambda: cores)
    backend = make_backend("torch-cpu", models=TINY, streams=streams, warmup=0)
    try:
        assert backend.threads_per_stream == threads
        assert backend.oversubscribed is oversubscribed
        assert backend.device_info()["threads_per_stream"] == threads
    finally:
        backend.close()


def test_asking_for_more_threads_than_cores_is_recorded(monkeypatch) -> None:
    from strait_sim.profiler import cpu_backend as cb

    monkeypatch.setattr(cb, "usable_cores", lambda: 2)
    backend = make_backend("torch-cpu", models=TINY, streams=2, threads_per_stream=2, warmup=0)
    try:
        assert backend.oversubscribed and backend.device_info()["oversubscribed"] is True
    finally:
        backend.close()


def test_malloc_is_pinned_for_device_timing() -> None:
    # glibc malloc's adaptive thresholds and per-thread arenas made forward times depend on
    # the process's history (profiler/malloc_pin.py); the backend records what held
    import ctypes.util

    from strait_sim.profiler.malloc_pin import arena_count, pin_malloc

    if not ctypes.util.find_library("c") or arena_count() is None:
        pytest.skip("not glibc")
    state = pin_malloc()
    assert state["pinned"] is True and state["mmap_threshold"] == 32 << 20
    backend = make_backend("torch-cpu", models=TINY, streams=1, threads_per_stream=1, warmup=0)
    try:
        assert backend.device_info()["malloc"]["pinned"] is True
    finally:
        backend.close()


def test_the_command_line_asks_for_one_arena_before_any_thread() -> None:
    import subprocess
    import sys

    code = ("import strait_sim.cli, threading, numpy\n"
            "from strait_sim.profiler.malloc_pin import arena_count\n"
            "t = threading.Thread(target=lambda: [bytearray(4096) for _ in range(64)])\n"
            "t.start(); t.join(); print(arena_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    if out == "None":
        pytest.skip("not glibc")
    assert out == "1"
