"""Choose and build a backend by name: the one entry point for the profiler and live mode.

>>> backend = make_backend("torch-cpu", models=["tiny_mlp"])      # doctest: +SKIP
>>> job = backend.submit("tiny_mlp", 4, stream=0); job.result().compute_ms  # doctest: +SKIP

``make_backend("torch-cuda", device=N)`` raises :class:`NoDeviceError` (one line) where no
CUDA GPU N is visible, before anything is built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from strait_sim.errors import NoDeviceError, UnknownNameError, UserError
from strait_sim.profiler.backend import Backend
from strait_sim.profiler.zoo import ModelSpec, model_registry

BACKENDS = ("torch-cuda", "torch-cpu", "tensorrt")
DEFAULT_PRECISION = {"torch-cuda": "fp16", "tensorrt": "fp16", "torch-cpu": "fp32"}


def check_gpu(index: int) -> None:
    """Raise NoDeviceError with one line unless CUDA GPU ``index`` is visible."""
    import torch

    if index < 0:
        raise UserError(f"--gpu must be >= 0, got {index}")
    if not torch.cuda.is_available():
        build = torch.version.cuda
        why = ("this torch build has no CUDA support" if build is None
               else f"torch {torch.__version__} (CUDA {build}) sees no GPU")
        raise NoDeviceError(f"GPU {index} requested but no CUDA GPU is available ({why}); "
                            f"use --cpu to run on the CPU instead")
    count = torch.cuda.device_count()
    if index >= count:
        raise NoDeviceError(f"GPU {index} requested but only {count} CUDA GPU(s) are visible "
                            f"(indices 0..{count - 1})")


def _model_map(models: Mapping[str, ModelSpec] | Iterable[str | ModelSpec] | None
               ) -> dict[str, ModelSpec]:
    registry = model_registry()
    if models is None:
        return registry
    if isinstance(models, Mapping):
        return dict(models)
    out: dict[str, ModelSpec] = {}
    for m in models:
        if isinstance(m, ModelSpec):
            out[m.name] = m
        elif m in registry:
            out[m] = registry[m]
        else:
            raise UnknownNameError("model", str(m), sorted(registry))
    return out


def make_backend(name: str, *, device: int | None = None, streams: int = 2,
                 precision: str | None = None,
                 models: Mapping[str, ModelSpec] | Iterable[str | ModelSpec] | None = None,
                 **options: object) -> Backend:
    """Build backend ``name`` over ``models`` (the zoo and registered models by default).

    ``options`` go to the backend's constructor (e.g. ``cuda_graphs=False``,
    ``threads_per_stream=1``, ``warmup=3``, ``seed=0``).
    """
    if name not in BACKENDS:
        raise UnknownNameError("backend", name, BACKENDS)
    precision = precision or DEFAULT_PRECISION[name]
    model_map = _model_map(models)
    if name == "torch-cpu":
        from strait_sim.profiler.cpu_backend import TorchCpuBackend

        return TorchCpuBackend(model_map, streams=streams, precision=precision,
                               **options)  # type: ignore[arg-type]
    index = 0 if device is None else int(device)
    if name == "tensorrt":
        from strait_sim.profiler.tensorrt_backend import require_tensorrt

        require_tensorrt()
    check_gpu(index)
    if name == "tensorrt":
        from strait_sim.profiler.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(model_map, device=index, streams=streams, precision=precision,
                               **options)  # type: ignore[arg-type]
    from strait_sim.profiler.cuda_backend import TorchCudaBackend

    return TorchCudaBackend(model_map, device=index, streams=streams, precision=precision,
                            **options)  # type: ignore[arg-type]
