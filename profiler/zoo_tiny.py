"""Tiny hand-written models: fast on a CPU, for the tests and smoke runs (and dry runs).

They are the only hand-written networks left in the zoo; the full-size models come from
the field's libraries (:mod:`strait_sim.profiler.zoo_hf`) or follow torchvision's
definitions exactly (:mod:`strait_sim.profiler.zoo_faithful`). The classes are unchanged
from the first zoo, so bundles profiled with them keep their architecture fingerprints.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn


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


def tiny_specs(model_spec: type) -> list:
    """The tiny variants, as ``model_spec`` (:class:`~strait_sim.profiler.zoo.ModelSpec`)."""
    return [
        model_spec("tiny_cnn", partial(ResNet, (1, 1), (8, 16), 8, 10), (3, 32, 32),
                   item_output_shape=(10,), description="2-block ResNet on 32x32", tiny=True),
        model_spec("tiny_mlp", TinyMLP, (256,), item_output_shape=(10,),
                   description="3-layer MLP, 256 features", tiny=True),
        model_spec("tiny_bert", partial(TransformerLM, 1000, 64, 2, 2, 16, False), (16,),
                   "int64", (16, 64), description="2-layer encoder, sequence 16", tiny=True),
    ]
