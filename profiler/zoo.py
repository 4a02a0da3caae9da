"""The model zoo: DNNs written in plain torch, plus the tiny variants used by the tests.

Why plain torch: torchvision is not importable with the CPU build of torch we develop on,
and the profiler must run the same code on the laptop and on the GPU. Weights are random
(timing does not depend on weight values); they are drawn from a forked torch RNG seeded
per model, so the global torch RNG state is never touched and every build is identical.

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


# -- building blocks ---------------------------------------------------------------------


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
            act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 convolution)."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.body = nn.Sequential(conv_bn(cin, width, 1), conv_bn(width, width, 3, stride),
                                  conv_bn(width, cout, 1, act=None))
        self.down = (conv_bn(cin, cout, 1, stride, act=None)
                     if stride != 1 or cin != cout else nn.Identity())
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.down(x))


class ResNet(nn.Module):
    def __init__(self, blocks: tuple[int, ...], widths: tuple[int, ...] = (64, 128, 256, 512),
                 stem: int = 64, classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, stem, 7, 2), nn.MaxPool2d(3, 2, 1)]
        cin = stem
        for i, (n, w) in enumerate(zip(blocks, widths, strict=True)):
            for j in range(n):
                layers.append(Bottleneck(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w * 4
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block; with ``se`` and SiLU it is EfficientNet's MBConv."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, k: int = 3,
                 se: bool = False, act: type[nn.Module] = nn.ReLU6) -> None:
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn(cin, mid, 1, act=act))
        layers.append(conv_bn(mid, mid, k, stride, groups=mid, act=act))
        if se:
            layers.append(SqueezeExcite(mid, max(1, cin // 4)))
        layers.append(conv_bn(mid, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(nn.functional.silu(self.fc1(s))))


class MobileNetV2(nn.Module):
    # (expand, channels, repeats, stride), as in the paper.
    CONFIG = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
              (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, classes: int = 1000, width: float = 1.0,
                 config: tuple[tuple[int, int, int, int], ...] | None = None) -> None:
        super().__init__()
        stem = max(8, int(32 * width))
        layers: list[nn.Module] = [conv_bn(3, stem, 3, 2, act=nn.ReLU6)]
        cin = stem
        for t, c, n, s in config or self.CONFIG:
            cout = max(8, int(c * width))
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        last = max(16, int(1280 * width))
        layers.append(conv_bn(cin, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(last, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class EfficientNetB0(nn.Module):
    # (expand, channels, repeats, stride, kernel)
    CONFIG = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
              (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3))

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, 32, 3, 2, act=nn.SiLU)]
        cin = 32
        for t, c, n, s, k in self.CONFIG:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t, k, se=True,
                                               act=nn.SiLU))
                cin = c
        layers.append(conv_bn(cin, 1280, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(1280, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class VGG(nn.Module):
    def __init__(self, config: tuple[int | str, ...], classes: int = 1000, hidden: int = 4096,
                 image: int = 224) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in config:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        side = min(7, image // 32)
        self.pool = nn.AdaptiveAvgPool2d(side)
        self.classifier = nn.Sequential(nn.Linear(cin * side * side, hidden), nn.ReLU(),
                                        nn.Linear(hidden, hidden), nn.ReLU(),
                                        nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bn_size: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(),
                                  nn.Conv2d(cin, bn_size * growth, 1, bias=False),
                                  nn.BatchNorm2d(bn_size * growth), nn.ReLU(),
                                  nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


class DenseNet(nn.Module):
    def __init__(self, blocks: tuple[int, ...] = (6, 12, 24, 16), growth: int = 32,
                 stem: int = 64, classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, stem, 7, 2, 3, bias=False), nn.BatchNorm2d(stem),
                                   nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        c = stem
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(c, growth))
                c += growth
            if i != len(blocks) - 1:
                layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False),
                           nn.AvgPool2d(2, 2)]
                c //= 2
        layers += [nn.BatchNorm2d(c), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class TransformerLM(nn.Module):
    """A pre-LN (GPT-2) or post-LN (BERT) transformer over token ids.

    BERT-like (``causal=False``): returns the last hidden state of every token, the output
    a serving system copies back for token classification or pooling. GPT-2-like
    (``causal=True``): one prefill forward, returning the next-token logits of the last
    position only (what a generation server copies back).
    """

    def __init__(self, vocab: int, hidden: int, layers: int, heads: int, seq: int,
                 causal: bool, ffn: int | None = None) -> None:
        super().__init__()
        self.causal = causal
        self.tok = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(seq, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, ffn or 4 * hidden, dropout=0.0,
                                           activation="gelu", batch_first=True,
                                           norm_first=causal)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, vocab, bias=False) if causal else None
        mask = torch.triu(torch.full((seq, seq), float("-inf")), 1) if causal else None
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.tok(ids) + self.pos(positions)
        mask = None if self.mask is None else self.mask.to(x.dtype)
        x = self.norm(self.encoder(x, mask=mask, is_causal=self.causal))
        if self.head is None:
            return x
        return self.head(x[:, -1])


class TinyMLP(nn.Module):
    def __init__(self, features: int = 256, hidden: int = 512, classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# -- the zoo -----------------------------------------------------------------------------

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
IMAGE = (3, 224, 224)
BERT_SEQ = 128


def _zoo() -> dict[str, ModelSpec]:
    specs = [
        ModelSpec("resnet50", partial(ResNet, (3, 4, 6, 3)), IMAGE,
                  description="ResNet-50 v1.5, 224x224, 25.6M params"),
        ModelSpec("mobilenet_v2", MobileNetV2, IMAGE,
                  description="MobileNetV2 1.0, 224x224, 3.5M params"),
        ModelSpec("vgg16", partial(VGG, VGG16), IMAGE,
                  description="VGG-16 (no BN), 224x224, 138M params"),
        ModelSpec("densenet121", DenseNet, IMAGE,
                  description="DenseNet-121, 224x224, 8.0M params"),
        ModelSpec("efficientnet_b0", EfficientNetB0, IMAGE,
                  description="EfficientNet-B0 (SE, SiLU), 224x224, 5.3M params"),
        ModelSpec("bert_base", partial(TransformerLM, 30522, 768, 12, 12, BERT_SEQ, False),
                  (BERT_SEQ,), "int64", (BERT_SEQ, 768),
                  description="BERT-base encoder, sequence 128, last hidden state out"),
        ModelSpec("gpt2_small", partial(TransformerLM, 50257, 768, 12, 12, BERT_SEQ, True),
                  (BERT_SEQ,), "int64", (50257,),
                  description="GPT-2 small decoder (untied LM head), one 128-token "
                              "prefill, last-position logits out"),
        # Tiny variants: fast on a CPU, for tests and smoke runs.
        ModelSpec("tiny_cnn", partial(ResNet, (1, 1), (8, 16), 8, 10), (3, 32, 32),
                  item_output_shape=(10,), description="2-block ResNet on 32x32", tiny=True),
        ModelSpec("tiny_mlp", TinyMLP, (256,), item_output_shape=(10,),
                  description="3-layer MLP, 256 features", tiny=True),
        ModelSpec("tiny_bert", partial(TransformerLM, 1000, 64, 2, 2, 16, False), (16,),
                  "int64", (16, 64), description="2-layer encoder, sequence 16", tiny=True),
    ]
    return {s.name: s for s in specs}


ZOO: dict[str, ModelSpec] = _zoo()
DEFAULT_MODELS = ("resnet50", "mobilenet_v2", "vgg16", "densenet121", "efficientnet_b0",
                  "bert_base")
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
