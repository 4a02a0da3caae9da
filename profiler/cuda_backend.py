"""``torch-cuda``: one process, one CUDA stream per slot, CUDA graphs, CUDA events.

Why this shape:
- One process with several streams: kernels of different processes do not overlap on a
  GPU without MPS, and we must not change the GPU's MPS/MIG/clock settings; streams of
  one process do overlap, which is the co-location the scheduler controls.
- The forward of each (model, batch) is captured once per stream as a CUDA graph (one
  launch instead of hundreds, so host launch overhead does not pollute device timings),
  with static input/output device tensors, and pinned host buffers allocated once, so
  that copies are true asynchronous DMA. A graph per stream, because a graph's static
  buffers must not be shared by two batches running at once; each graph keeps its own
  memory pool for the same reason.
- Timing by CUDA events around copy-in, forward and copy-out. Event times are mapped onto
  the host ``time.perf_counter`` clock through a reference event recorded on an idle
  device at a known host time (best of several tries), re-anchored whenever the backend
  is synchronized and the anchor is older than ``reanchor_s``.
- One watcher thread per stream waits (without the GIL) on each job's last event in FIFO
  order and completes the job, then calls ``on_done``.

Nothing here changes clocks, power limits, MIG or MPS. Not run in the development session
(no GPU there); see docs/profiling.md.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from strait_sim.errors import UnknownNameError, UserError
from strait_sim.profiler.backend import Backend, BackendError, Job, PhaseTiming, TransferTiming
from strait_sim.profiler.device_info import cuda_device_info, nvml_clocks, software_versions
from strait_sim.profiler.jobs import FutureJob
from strait_sim.profiler.malloc_pin import pin_malloc
from strait_sim.profiler.zoo import PRECISIONS, ModelSpec, count_params

Runner = Callable[[], torch.Tensor]


@dataclass
class _Slot:
    """Everything one (model, batch, stream) needs to run: buffers and the runner."""

    host_in: torch.Tensor      # pinned
    static_in: torch.Tensor    # device
    run: Runner                # launches the forward on the current stream, returns output
    host_out: torch.Tensor     # pinned
    graph: object | None = None


class _Anchor:
    """A device timestamp (event) known to have happened at host time ``host_s``."""

    def __init__(self, device: torch.device, stream: torch.cuda.Stream, tries: int = 5) -> None:
        best: tuple[float, float, torch.cuda.Event] | None = None
        torch.cuda.synchronize(device)
        for _ in range(tries):
            ev = torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            ev.record(stream)
            ev.synchronize()
            t1 = time.perf_counter()
            if best is None or t1 - t0 < best[1] - best[0]:
                best = (t0, t1, ev)
        assert best is not None
        self.host_s = (best[0] + best[1]) / 2
        self.event = best[2]
        self.uncertainty_s = (best[1] - best[0]) / 2
        self.created = time.monotonic()

    def to_host(self, ev: torch.cuda.Event) -> float:
        return self.host_s + self.event.elapsed_time(ev) / 1e3


class _Watcher:
    """Completes the jobs of one stream in FIFO order, off the submitting thread."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Callable[[], None] | None) -> None:
        self._queue.put(item)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            item()

    def drain(self) -> None:
        ev = threading.Event()
        self._queue.put(ev.set)
        ev.wait()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)


class TorchCudaBackend(Backend):
    """``streams`` CUDA streams on GPU ``device``; see the module docstring."""

    name = "torch-cuda"
    kind = "cuda"

    def __init__(self, models: Mapping[str, ModelSpec], *, device: int = 0, streams: int = 2,
                 precision: str = "fp16", cuda_graphs: bool = True, warmup: int = 3,
                 seed: int = 0, reanchor_s: float = 30.0) -> None:
        if precision not in ("fp16", "fp32", "bf16"):
            raise UserError(f"torch-cuda supports precision fp16, fp32 or bf16, not {precision!r}")
        if streams < 1:
            raise UserError(f"streams must be >= 1, got {streams}")
        pin_malloc()  # host-side allocations of the timed path, as on the CPU backend
        self.models = dict(models)
        self.precision = precision
        self.dtype = PRECISIONS[precision]
        self.streams = streams
        self.cuda_graphs = cuda_graphs
        self.warmup = warmup
        self.seed = seed
        self.reanchor_s = reanchor_s
        self.device = torch.device("cuda", device)
        self.index = device
        torch.cuda.set_device(self.device)
        self._streams = [torch.cuda.Stream(device=self.device) for _ in range(streams)]
        self._watchers = [_Watcher(f"strait-cuda-watch-{i}") for i in range(streams)]
        self._copy_streams: dict[int, torch.cuda.Stream] = {}
        self._copy_watchers: dict[int, _Watcher] = {}
        self._copy_bufs: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._modules: dict[str, torch.nn.Module] = {}
        self._slots: dict[tuple[str, int, int], _Slot] = {}
        self.eager_fallbacks: dict[str, str] = {}  # "model@batch" -> why capture failed
        self._sleep_cycles_per_s: float | None = None
        self._lock = threading.RLock()
        self._closed = False
        self._anchor = _Anchor(self.device, self._streams[0])
        self._cycles_per_s()  # calibrate the spin now, while every stream is idle

    # -- contract ------------------------------------------------------------------------
    def device_info(self) -> dict:
        info = cuda_device_info(self.index)
        info["software"] = software_versions()
        info["clock_anchor_uncertainty_us"] = round(self._anchor.uncertainty_s * 1e6, 2)
        if self.eager_fallbacks:
            info["cuda_graph_fallbacks"] = dict(self.eager_fallbacks)
        return info

    def clocks(self) -> dict:
        return nvml_clocks(self.index)

    def spec(self, model: str) -> ModelSpec:
        if model not in self.models:
            raise UnknownNameError("model", model, sorted(self.models))
        return self.models[model]

    def module(self, model: str) -> torch.nn.Module:
        with self._lock:
            if model not in self._modules:
                mod = self.spec(model).build(self.seed)
                self._modules[model] = mod.to(self.device, self.dtype)
            return self._modules[model]

    def params(self, model: str) -> int:
        return count_params(self.module(model))

    def prepare(self, model: str, batch: int) -> None:
        if batch < 1:
            raise UserError(f"batch must be >= 1, got {batch}")
        spec = self.spec(model)
        try:
            module = self.module(model)
            gen = torch.Generator().manual_seed(self.seed + batch)
            for s in range(self.streams):
                with self._lock:
                    if (model, batch, s) in self._slots:
                        continue
                    self._slots[(model, batch, s)] = self._make_slot(spec, module, batch, s, gen)
            torch.cuda.synchronize(self.device)
        except torch.cuda.OutOfMemoryError as exc:
            raise BackendError(f"{model} batch {batch}: out of GPU memory "
                               f"({str(exc).splitlines()[0]})") from None
        except RuntimeError as exc:
            raise BackendError(f"{model} batch {batch}: {str(exc).splitlines()[0]}") from None

    def _make_slot(self, spec: ModelSpec, module: torch.nn.Module, batch: int, stream: int,
                   gen: torch.Generator) -> _Slot:
        host_in = spec.make_input(batch, self.precision, gen).pin_memory()
        static_in = torch.empty(host_in.shape, dtype=host_in.dtype, device=self.device)
        static_in.copy_(host_in)
        run, graph = self._make_runner(spec, module, batch, static_in, stream)
        with torch.cuda.stream(self._streams[stream]):
            out = run()
        torch.cuda.synchronize(self.device)
        host_out = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
        return _Slot(host_in, static_in, run, host_out, graph)

    def _make_runner(self, spec: ModelSpec, module: torch.nn.Module, batch: int,
                     static_in: torch.Tensor, stream: int) -> tuple[Runner, object | None]:
        """Warm up eagerly on a side stream, then capture a CUDA graph (or fall back)."""
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(max(1, self.warmup)):
                module(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        torch.cuda.synchronize(self.device)

        def eager() -> torch.Tensor:
            with torch.no_grad():
                return module(static_in)

        if not self.cuda_graphs:
            return eager, None
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: work launched meanwhile by other threads (a live executor's
            # watchers, another stream) does not invalidate this capture
            with torch.no_grad(), torch.cuda.graph(graph, capture_error_mode="thread_local"):
                static_out = module(static_in)
        except Exception as exc:  # some ops refuse capture: keep going, eagerly, and say so
            torch.cuda.synchronize(self.device)
            self.eager_fallbacks[f"{spec.name}@{batch}"] = str(exc).splitlines()[0][:200]
            return eager, None

        def replay() -> torch.Tensor:
            graph.replay()
            return static_out

        return replay, graph

    def submit(self, model: str, batch: int, stream: int,
               on_done: Callable[[Job], None] | None = None) -> Job:
        self._check_open()
        if not 0 <= stream < self.streams:
            raise UserError(f"stream {stream} out of range (backend has {self.streams})")
        key = (model, batch, stream)
        if key not in self._slots:
            self.prepare(model, batch)
        slot = self._slots[key]
        job = FutureJob(model, batch, stream, on_done)
        s = self._streams[stream]
        anchor = self._anchor
        events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        try:
            with torch.cuda.stream(s):
                events[0].record(s)
                slot.static_in.copy_(slot.host_in, non_blocking=True)
                events[1].record(s)
                out = slot.run()
                events[2].record(s)
                slot.host_out.copy_(out, non_blocking=True)
                events[3].record(s)
        except Exception as exc:
            err = BackendError(f"{model} batch {batch}: {str(exc).splitlines()[0]}")
            self._watchers[stream].put(lambda: job.set_error(err))
            return job

        def complete() -> None:
            try:
                events[3].synchronize()
                t = [anchor.to_host(e) for e in events]
            except Exception as exc:
                job.set_error(BackendError(f"{model} batch {batch}: {exc}"))
                return
            job.set_result(PhaseTiming(t[0], t[1], t[2], t[3]))

        self._watchers[stream].put(complete)
        return job

    def synchronize(self) -> None:
        if self._closed:
            return
        torch.cuda.synchronize(self.device)
        for w in [*self._watchers, *self._copy_watchers.values()]:
            w.drain()
        if time.monotonic() - self._anchor.created > self.reanchor_s:
            self._anchor = _Anchor(self.device, self._streams[0])

    def close(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(Exception):
            self.synchronize()
        self._closed = True
        for w in [*self._watchers, *self._copy_watchers.values()]:
            w.stop()
        self._slots.clear()
        self._copy_bufs.clear()
        self._modules.clear()
        with contextlib.suppress(Exception):
            torch.cuda.empty_cache()

    # -- extras used by the profiler -----------------------------------------------------
    def enqueue_delay(self, stream: int, seconds: float) -> None:
        """A device-side spin (``torch.cuda._sleep``, one thread block) on ``stream``."""
        self._check_open()
        if seconds <= 0:
            return
        cycles = int(seconds * self._cycles_per_s())
        with torch.cuda.stream(self._streams[stream]):
            torch.cuda._sleep(cycles)

    def _cycles_per_s(self) -> float:
        if self._sleep_cycles_per_s is None:
            s = self._streams[0]
            rates = []
            for _ in range(3):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                with torch.cuda.stream(s):
                    a.record(s)
                    torch.cuda._sleep(2_000_000)
                    b.record(s)
                b.synchronize()
                rates.append(2_000_000 / (a.elapsed_time(b) / 1e3))
            self._sleep_cycles_per_s = sorted(rates)[1]
        return self._sleep_cycles_per_s

    def transfer(self, direction: str, nbytes: int, lane: int,
                 on_done: Callable[[Job], None] | None = None) -> Job:
        self._check_open()
        if direction not in ("h2d", "d2h"):
            raise UserError(f"direction must be h2d or d2h, got {direction!r}")
        self._copy_stream(lane)
        with self._lock:
            key = (lane, direction)
            host, dev = self._copy_bufs.get(key, (torch.empty(0, dtype=torch.uint8),) * 2)
            if host.numel() < nbytes:
                self._copy_bufs.pop(key, None)
                host = torch.ones(nbytes, dtype=torch.uint8, pin_memory=True)
                dev = torch.empty(nbytes, dtype=torch.uint8, device=self.device)
                self._copy_bufs[key] = (host, dev)
        s = self._copy_streams[lane]
        job = FutureJob(f"copy-{direction}", nbytes, lane, on_done)
        anchor = self._anchor
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(s):
            a.record(s)
            if direction == "h2d":
                dev[:nbytes].copy_(host[:nbytes], non_blocking=True)
            else:
                host[:nbytes].copy_(dev[:nbytes], non_blocking=True)
            b.record(s)

        def complete() -> None:
            try:
                b.synchronize()
                job.set_result(TransferTiming(anchor.to_host(a), anchor.to_host(b)))
            except Exception as exc:
                job.set_error(BackendError(f"copy {nbytes} B: {exc}"))

        self._copy_watchers[lane].put(complete)
        return job

    def _copy_stream(self, lane: int) -> torch.cuda.Stream:
        with self._lock:
            if lane not in self._copy_streams:
                self._copy_streams[lane] = torch.cuda.Stream(device=self.device)
                self._copy_watchers[lane] = _Watcher(f"strait-cuda-copy-{lane}")
            return self._copy_streams[lane]

    def align_copy_lanes(self, lanes: list[int], delay_s: float = 200e-6) -> None:
        """A gate: one spin kernel on a side stream, then every lane waits on its event,
        so copies enqueued next on these lanes are released together."""
        self._check_open()
        gate = torch.cuda.Stream(device=self.device)
        ev = torch.cuda.Event()
        with torch.cuda.stream(gate):
            torch.cuda._sleep(int(max(delay_s, 50e-6) * self._cycles_per_s()))
            ev.record(gate)
        for lane in lanes:
            self._copy_stream(lane).wait_event(ev)

    def release_transfer_buffers(self) -> None:
        self.synchronize()
        with self._lock:
            self._copy_bufs.clear()
        torch.cuda.empty_cache()

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{self.name} backend is closed")
