"""``torch-cpu``: the backend contract on the CPU, so that everything runs without a GPU.

Each stream is one worker thread with its own FIFO queue, as a CUDA stream is one FIFO of
work on the device; two streams run concurrently, so co-location on the CPU is real
contention (for cores, caches, memory bandwidth and, between torch ops, the GIL).

Threads: each worker calls ``torch.set_num_threads(threads_per_stream)``. The default is
the usable cores divided by the streams (at least 1), so that the streams together never
run more torch threads than there are cores. Why not every core per stream, so that a batch
alone uses the whole device as a kernel alone may use every SM of a GPU: once more OpenMP
threads exist than cores, libgomp stops spinning between parallel regions and sleeps on a
futex instead, and a forward's time then depends on the history of the other streams, not
on the work. Measured on the 2-vCPU development VM (2 streams x 2 threads, 2026-12-01):
mobilenet_v2@1 took 23-28 ms back to back on stream 0 once stream 1 had ever run, 13.5 ms
before; with pauses between forwards (as in a live run at low load) 19 ms; beside a
co-runner 0.80-0.98x its solo time (a co-runner made it faster). The profiler measured the
first, live runs experienced the others, and the simulator's latencies were 17-50% high
(docs/validation.md). With 1 thread per stream the same forwards took 14-15 ms in every
case and 1.04-1.16x beside a co-runner. ``oversubscribed`` says when a caller asked for
more threads than that; the bundle records it.

Memory: glibc's malloc adapts to the process's history, and a forward's time with it;
:func:`~strait_sim.profiler.malloc_pin.pin_malloc`, called here, fixes its thresholds
(the command line asks for one arena before any thread exists); see that module.

The GIL: torch releases it inside operators, but the Python between operators holds it,
and CPython hands it over only every ``sys.getswitchinterval()`` (5 ms by default), which
would serialize small models on two streams. The backend lowers the interval to
``switch_interval_s`` (0.2 ms) while it is open and restores it on ``close``.

"Copy in" is a memcpy from a host buffer allocated once into the model's preallocated
input tensor, and "copy out" a memcpy of the output into a preallocated host buffer: still
timed, so that the phase structure matches the GPU backends. There is no link: bare
transfers (``transfer``) measure host memory bandwidth, in both "directions".
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from strait_sim.errors import UserError
from strait_sim.profiler.backend import Backend, BackendError, Job, PhaseTiming, TransferTiming
from strait_sim.profiler.device_info import cpu_device_info, software_versions
from strait_sim.profiler.jobs import FutureJob
from strait_sim.profiler.malloc_pin import pin_malloc
from strait_sim.profiler.zoo import ModelSpec, count_params


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads_per_stream(streams: int) -> int:
    """The cores shared out among the streams, at least 1 (see the module docstring)."""
    return max(1, usable_cores() // max(1, streams))


class _Lane:
    """One worker thread running callables in FIFO order."""

    def __init__(self, name: str, threads: int) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = threads
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        torch.set_num_threads(self._threads)
        while True:
            item = self._queue.get()
            if item is None:
                return
            item()

    def put(self, item: Callable[[], None]) -> None:
        self._queue.put(item)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)


def build_or_explain(spec: ModelSpec, seed: int) -> torch.nn.Module:
    """``spec.build(seed)``, with running out of host memory as one line naming the model.

    Why not a skipped unit (as a forward that runs out of memory is): without its weights
    the model has no batch size that can be measured, so the session stops, and says
    which model to leave out or profile on a larger machine.
    """
    try:
        return spec.build(seed)
    except (MemoryError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, RuntimeError) and "can't allocate memory" not in first \
                and "out of memory" not in first.lower():
            raise  # not the host's memory: a bug, keep its traceback
        raise UserError(f"model '{spec.name}' could not be built: out of memory ({first}); "
                        "leave it out of --models or profile on a machine with more "
                        "memory") from None


@dataclass
class _Buffers:
    host_in: torch.Tensor
    dev_in: torch.Tensor
    host_out: torch.Tensor


class TorchCpuBackend(Backend):
    """``streams`` worker threads over shared, read-only model modules."""

    name = "torch-cpu"
    kind = "cpu"

    def __init__(self, models: Mapping[str, ModelSpec], *, streams: int = 2,
                 precision: str = "fp32", threads_per_stream: int | None = None,
                 warmup: int = 2, seed: int = 0, switch_interval_s: float = 2e-4) -> None:
        if precision not in ("fp32", "bf16"):
            raise UserError(f"torch-cpu supports precision fp32 or bf16, not {precision!r}")
        if streams < 1:
            raise UserError(f"streams must be >= 1, got {streams}")
        self.models = dict(models)
        self.precision = precision
        self.streams = streams
        self.warmup = warmup
        self.seed = seed
        self.threads_per_stream = threads_per_stream or default_threads_per_stream(streams)
        if self.threads_per_stream < 1:
            raise UserError(f"threads per stream must be >= 1, got {threads_per_stream}")
        self.malloc = pin_malloc()
        # one thread per stream makes no OpenMP team, so no waiting policy to change
        self.oversubscribed = (self.threads_per_stream > 1
                               and streams * self.threads_per_stream > usable_cores())
        self.cuda_graphs = False
        self._modules: dict[str, torch.nn.Module] = {}
        self._buffers: dict[tuple[str, int, int], _Buffers] = {}
        self._lanes = [_Lane(f"strait-cpu-stream-{i}", self.threads_per_stream)
                       for i in range(streams)]
        self._copy_lanes: dict[int, _Lane] = {}
        self._copy_bufs: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._old_switch = sys.getswitchinterval()
        sys.setswitchinterval(switch_interval_s)

    # -- contract ------------------------------------------------------------------------
    def device_info(self) -> dict:
        info = cpu_device_info()
        info["threads_per_stream"] = self.threads_per_stream
        info["oversubscribed"] = self.oversubscribed
        info["malloc"] = self.malloc
        info["software"] = software_versions()
        return info

    def spec(self, model: str) -> ModelSpec:
        if model not in self.models:
            from strait_sim.errors import UnknownNameError

            raise UnknownNameError("model", model, sorted(self.models))
        return self.models[model]

    def module(self, model: str) -> torch.nn.Module:
        with self._lock:
            if model not in self._modules:
                mod = build_or_explain(self.spec(model), self.seed)
                if self.precision == "bf16":
                    mod = mod.to(torch.bfloat16)
                self._modules[model] = mod
            return self._modules[model]

    def params(self, model: str) -> int:
        return count_params(self.module(model))

    def prepare(self, model: str, batch: int) -> None:
        if batch < 1:
            raise UserError(f"batch must be >= 1, got {batch}")
        spec = self.spec(model)
        module = self.module(model)
        gen = torch.Generator().manual_seed(self.seed + batch)
        for s in range(self.streams):
            key = (model, batch, s)
            if key in self._buffers:
                continue
            host_in = spec.make_input(batch, self.precision, gen)
            out_dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
            self._buffers[key] = _Buffers(
                host_in=host_in, dev_in=torch.empty_like(host_in),
                host_out=torch.empty((batch, *spec.item_output_shape), dtype=out_dtype))
            for _ in range(self.warmup):  # warm up on the stream's own thread (its OMP team)
                self.submit(model, batch, s).result()
        del module

    reports_phases = True

    def submit(self, model: str, batch: int, stream: int,
               on_done: Callable[[Job], None] | None = None,
               on_phase: Callable[[Job, str, float], None] | None = None) -> Job:
        self._check_open()
        key = (model, batch, stream)
        if not 0 <= stream < self.streams:
            raise UserError(f"stream {stream} out of range (backend has {self.streams})")
        if key not in self._buffers:
            self.prepare(model, batch)
        job = FutureJob(model, batch, stream, on_done)
        buf = self._buffers[key]
        module = self._modules[model]
        self._lanes[stream].put(lambda: self._run(job, module, buf, on_phase))
        return job

    @staticmethod
    def _run(job: FutureJob, module: torch.nn.Module, buf: _Buffers,
             on_phase: Callable[[Job, str, float], None] | None = None) -> None:
        try:
            t0 = time.perf_counter()
            buf.dev_in.copy_(buf.host_in)
            t1 = time.perf_counter()
            if on_phase is not None:
                on_phase(job, "compute", t1)
            with torch.inference_mode():
                out = module(buf.dev_in)
            t2 = time.perf_counter()
            if on_phase is not None:
                on_phase(job, "d2h", t2)
            buf.host_out.copy_(out)
            t3 = time.perf_counter()
        except Exception as exc:
            job.set_error(BackendError(f"{job.model} batch {job.batch}: "
                                       f"{type(exc).__name__}: {exc}"))
            return
        job.set_result(PhaseTiming(t0, t1, t2, t3))

    def synchronize(self) -> None:
        if self._closed:
            return
        barriers = []
        for lane in [*self._lanes, *self._copy_lanes.values()]:
            ev = threading.Event()
            lane.put(ev.set)
            barriers.append(ev)
        for ev in barriers:
            ev.wait()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for lane in [*self._lanes, *self._copy_lanes.values()]:
            lane.stop()
        sys.setswitchinterval(self._old_switch)
        self._buffers.clear()
        self._copy_bufs.clear()
        self._modules.clear()

    # -- extras used by the profiler -----------------------------------------------------
    def enqueue_delay(self, stream: int, seconds: float) -> None:
        self._check_open()
        if seconds > 0:
            self._lanes[stream].put(lambda: time.sleep(seconds))

    def transfer(self, direction: str, nbytes: int, lane: int,
                 on_done: Callable[[Job], None] | None = None) -> Job:
        self._check_open()
        if direction not in ("h2d", "d2h"):
            raise UserError(f"direction must be h2d or d2h, got {direction!r}")
        copy_lane = self._copy_lane(lane)
        with self._lock:
            key = (lane, direction)
            src, dst = self._copy_bufs.get(key, (torch.empty(0, dtype=torch.uint8),) * 2)
            if src.numel() < nbytes:
                src = torch.ones(nbytes, dtype=torch.uint8)
                dst = torch.zeros(nbytes, dtype=torch.uint8)
                self._copy_bufs[key] = (src, dst)
        job = FutureJob(f"copy-{direction}", nbytes, lane, on_done)

        def run() -> None:
            try:
                t0 = time.perf_counter()
                dst[:nbytes].copy_(src[:nbytes])
                t1 = time.perf_counter()
            except Exception as exc:
                job.set_error(BackendError(f"copy {nbytes} B: {exc}"))
                return
            job.set_result(TransferTiming(t0, t1))

        copy_lane.put(run)
        return job

    def align_copy_lanes(self, lanes: list[int], delay_s: float = 2e-3) -> None:
        """A barrier: each lane's next copy starts when every lane has reached it; the
        lanes first sleep ``delay_s`` so that the caller has enqueued those copies."""
        self._check_open()
        barrier = threading.Barrier(len(lanes))
        for lane in lanes:
            self._copy_lane(lane).put(lambda: (time.sleep(delay_s), barrier.wait(60)))

    def _copy_lane(self, lane: int) -> _Lane:
        with self._lock:
            if lane not in self._copy_lanes:
                self._copy_lanes[lane] = _Lane(f"strait-cpu-copy-{lane}", 1)
            return self._copy_lanes[lane]

    def release_transfer_buffers(self) -> None:
        """Free the bare-transfer buffers (they can be hundreds of MiB)."""
        self.synchronize()
        with self._lock:
            self._copy_bufs.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{self.name} backend is closed")

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
