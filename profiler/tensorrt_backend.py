"""``tensorrt``: the torch-cuda backend with each forward replaced by a TensorRT engine.

Engines are built from an ONNX export of the zoo module (in the chosen precision, one
engine per (model, batch), static shapes), with one execution context per stream so that
streams run concurrently. Buffers, streams, events, clock mapping and copies are those of
:class:`TorchCudaBackend`.

Loaded only where ``import tensorrt`` works; elsewhere :func:`require_tensorrt` raises a
one-line :class:`UserError`. NOT TESTED: no machine with TensorRT was available while this
was written (see docs/profiling.md).
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import torch

from strait_sim.errors import UserError
from strait_sim.profiler.cuda_backend import Runner, TorchCudaBackend
from strait_sim.profiler.zoo import ModelSpec


def require_tensorrt():  # noqa: ANN201 - returns the tensorrt module
    try:
        import tensorrt  # type: ignore[import-not-found]
    except Exception as exc:
        raise UserError(f"backend 'tensorrt' needs the TensorRT Python package "
                        f"(import tensorrt failed: {type(exc).__name__}: {exc}); "
                        f"use --backend torch-cuda") from None
    return tensorrt


class TensorRTBackend(TorchCudaBackend):
    name = "tensorrt"
    kind = "cuda"

    def __init__(self, models: Mapping[str, ModelSpec], **kwargs) -> None:  # noqa: ANN003
        self.trt = require_tensorrt()
        self._logger = self.trt.Logger(self.trt.Logger.WARNING)
        self._engines: dict[tuple[str, int], object] = {}
        kwargs["cuda_graphs"] = False  # TensorRT enqueues its own kernels
        super().__init__(models, **kwargs)

    def device_info(self) -> dict:
        info = super().device_info()
        info["tensorrt"] = self.trt.__version__
        return info

    def _engine(self, spec: ModelSpec, module: torch.nn.Module, static_in: torch.Tensor):  # noqa: ANN202
        key = (spec.name, int(static_in.shape[0]))
        if key in self._engines:
            return self._engines[key]
        trt = self.trt
        buf = io.BytesIO()
        with torch.no_grad():
            torch.onnx.export(module, (static_in,), buf, input_names=["input"],
                              output_names=["output"], opset_version=17, dynamo=False)
        builder = trt.Builder(self._logger)
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(buf.getvalue()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise UserError(f"TensorRT could not parse the ONNX export of {spec.name}: {errors}")
        config = builder.create_builder_config()
        if self.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        elif self.precision == "bf16":
            config.set_flag(trt.BuilderFlag.BF16)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise UserError(f"TensorRT failed to build an engine for {spec.name} "
                            f"batch {key[1]}")
        engine = trt.Runtime(self._logger).deserialize_cuda_engine(serialized)
        self._engines[key] = engine
        return engine

    def _make_runner(self, spec: ModelSpec, module: torch.nn.Module, batch: int,
                     static_in: torch.Tensor, stream: int) -> tuple[Runner, object | None]:
        engine = self._engine(spec, module, static_in)
        context = engine.create_execution_context()
        out_shape = tuple(engine.get_tensor_shape("output"))
        out = torch.empty(out_shape, dtype=self.dtype, device=self.device)
        context.set_tensor_address("input", static_in.data_ptr())
        context.set_tensor_address("output", out.data_ptr())

        def run() -> torch.Tensor:
            if not context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
                raise RuntimeError(f"TensorRT enqueue failed for {spec.name} batch {batch}")
            return out

        run()
        return run, context
