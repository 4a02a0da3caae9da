"""The model zoo: the field's models, the same on the CPU and the GPU, plus tiny test models.

Where the models come from (docs/profiling.md, "The model zoo"):
- transformers' model classes built from their configurations (:mod:`.zoo_hf`): ResNet-50,
  ViT-B/16, ConvNeXt-B, MobileNetV2, EfficientNet-B0, RoBERTa-base, BERT-base, GPT-2;
  random weights, nothing downloaded; transformers is imported only when one is built;
- torchvision's definitions, layer for layer, for what transformers lacks
  (:mod:`.zoo_faithful`): VGG-16, VGG-19, DenseNet-121. torchvision itself does not load
  with the CPU-only torch this project develops on;
- hand-written tiny models for tests and dry runs (:mod:`.zoo_tiny`).

Weights are random (timing does not depend on weight values); they are drawn from a forked
torch RNG seeded per model, so the global torch RNG state is never touched and every
build is identical.

A :class:`ModelSpec` is all a backend needs: a factory for the ``nn.Module`` and the shape
and dtype of one item of input. Users add their own models without editing the package,
either with ``--model-file my_models.py`` (a file that defines ``MODELS``, a list of
``ModelSpec``) or through the entry-point group ``strait_sim.models`` (each entry point a
callable returning a list of ``ModelSpec``). See docs/profiling.md.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from strait_sim.errors import UnknownNameError, UserError

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class ModelSpec:
    """How to build one model and feed it one item.

    ``input_dtype`` is ``"float"`` (follows the backend's precision) or ``"int64"`` (token
    ids). ``item_output_shape`` is the output of one item; the output is assumed to be a
    float tensor in the backend's precision.
    """

    name: str
    factory: Callable[[], nn.Module]
    item_input_shape: tuple[int, ...]
    input_dtype: str = "float"
    item_output_shape: tuple[int, ...] = (1000,)
    description: str = ""
    tiny: bool = False

    def __post_init__(self) -> None:
        if self.input_dtype not in ("float", "int64"):
            raise UserError(f"model '{self.name}': input_dtype must be 'float' or 'int64', "
                            f"got {self.input_dtype!r}")

    def torch_input_dtype(self, precision: str) -> torch.dtype:
        return torch.int64 if self.input_dtype == "int64" else PRECISIONS[precision]

    def input_bytes_per_item(self, precision: str) -> int:
        size = torch.tensor([], dtype=self.torch_input_dtype(precision)).element_size()
        return int(math.prod(self.item_input_shape)) * size

    def output_bytes_per_item(self, precision: str) -> int:
        size = torch.tensor([], dtype=PRECISIONS[precision]).element_size()
        return int(math.prod(self.item_output_shape)) * size

    def build(self, seed: int = 0) -> nn.Module:
        """The module in eval mode, with weights drawn from a forked, seeded RNG."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self.factory()
        return module.eval()

    def make_input(self, batch: int, precision: str, generator: torch.Generator) -> torch.Tensor:
        """A random CPU input batch (token ids below the smallest zoo vocabulary)."""
        shape = (batch, *self.item_input_shape)
        if self.input_dtype == "int64":
            return torch.randint(0, 1000, shape, generator=generator, dtype=torch.int64)
        return torch.randn(shape, generator=generator).to(PRECISIONS[precision])


# -- the zoo -----------------------------------------------------------------------------

IMAGE = (3, 224, 224)
SEQ = 128  # tokens per item for the text models


def _zoo() -> dict[str, ModelSpec]:
    from strait_sim.profiler import zoo_faithful as tv
    from strait_sim.profiler import zoo_hf as hf
    from strait_sim.profiler.zoo_tiny import tiny_specs

    specs = [
        # transformers model classes from their configurations (random weights, no download)
        ModelSpec("resnet50", hf.resnet50, IMAGE,
                  description="ResNet-50 v1.5 (transformers), 224x224, logits out"),
        ModelSpec("vit_b16", hf.vit_b16, IMAGE,
                  description="ViT-B/16 (transformers), 224x224 (196 patches + CLS), "
                              "logits out"),
        ModelSpec("convnext_b", hf.convnext_b, IMAGE,
                  description="ConvNeXt-B (transformers), 224x224, logits out"),
        ModelSpec("mobilenet_v2", hf.mobilenet_v2, IMAGE,
                  description="MobileNetV2 1.0 (transformers), 224x224, logits out"),
        ModelSpec("efficientnet_b0", hf.efficientnet_b0, IMAGE,
                  description="EfficientNet-B0 (transformers), 224x224, logits out"),
        ModelSpec("roberta_base", hf.roberta_base, (SEQ,), "int64", (SEQ, 768),
                  description=f"RoBERTa-base encoder (transformers), {SEQ} tokens, last "
                              "hidden state out"),
        ModelSpec("bert_base", hf.bert_base, (SEQ,), "int64", (SEQ, 768),
                  description=f"BERT-base uncased encoder (transformers), {SEQ} tokens, last "
                              "hidden state out"),
        ModelSpec("gpt2_small", hf.gpt2_small, (SEQ,), "int64", (50257,),
                  description=f"GPT-2 small (transformers), one {SEQ}-token prefill, "
                              "last-position logits out"),
        # torchvision's definitions, layer for layer (transformers has neither)
        ModelSpec("vgg16", partial(tv.VGG, tv.VGG16_CFG), IMAGE,
                  description="VGG-16 (torchvision's definition), 224x224, logits out"),
        ModelSpec("vgg19", partial(tv.VGG, tv.VGG19_CFG), IMAGE,
                  description="VGG-19 (torchvision's definition), 224x224, logits out"),
        ModelSpec("densenet121", tv.DenseNet, IMAGE,
                  description="DenseNet-121 (torchvision's definition), 224x224, logits out"),
        *tiny_specs(ModelSpec),
    ]
    return {s.name: s for s in specs}


ZOO: dict[str, ModelSpec] = _zoo()
# The predecessor paper's models that the zoo has (YOLO-v8n is not in it: docs/profiling.md).
PAPER_MODELS = ("resnet50", "vit_b16", "roberta_base", "vgg19", "convnext_b")
DEFAULT_MODELS = (*PAPER_MODELS, "mobilenet_v2", "efficientnet_b0", "densenet121")
TINY_MODELS = ("tiny_cnn", "tiny_mlp", "tiny_bert")


def load_model_file(path: str | Path) -> list[ModelSpec]:
    """Import a user's Python file and return its ``MODELS`` list of :class:`ModelSpec`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found")
    spec = importlib.util.spec_from_file_location(f"strait_sim_user_models_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: report it on one line
        raise UserError(f"{path}: failed to import: {type(exc).__name__}: {exc}") from None
    models = getattr(module, "MODELS", None)
    if not isinstance(models, list | tuple) or not all(isinstance(m, ModelSpec) for m in models):
        raise UserError(f"{path}: must define MODELS, a list of "
                        "strait_sim.profiler.zoo.ModelSpec")
    return list(models)


def _entry_point_models() -> list[ModelSpec]:
    from importlib.metadata import entry_points

    out: list[ModelSpec] = []
    for ep in entry_points(group="strait_sim.models"):
        try:
            got = ep.load()()
        except Exception as exc:
            raise UserError(f"entry point '{ep.name}' in group strait_sim.models failed: "
                            f"{type(exc).__name__}: {exc}") from None
        out.extend(got)
    return out


def model_registry(model_files: Iterable[str | Path] = ()) -> dict[str, ModelSpec]:
    """The zoo, plus entry-point models, plus models from ``model_files`` (later wins)."""
    reg = dict(ZOO)
    for spec in _entry_point_models():
        reg[spec.name] = spec
    for f in model_files:
        for spec in load_model_file(f):
            reg[spec.name] = spec
    return reg


def resolve_models(names: Iterable[str], registry: Mapping[str, ModelSpec]) -> list[ModelSpec]:
    """Specs for ``names`` in order, or one line naming the unknown one."""
    out = []
    for n in names:
        if n not in registry:
            raise UnknownNameError("model", n, sorted(registry))
        out.append(registry[n])
    return out


def count_params(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))
