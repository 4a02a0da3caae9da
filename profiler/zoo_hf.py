"""Zoo models from transformers: its model classes, built from configurations, no download.

Each factory builds the class a checkpoint on the Hugging Face hub would load
(``microsoft/resnet-50``, ``google/vit-base-patch16-224``, ``facebook/convnext-base-224``,
``google/mobilenet_v2_1.0_224``, ``google/efficientnet-b0``, ``FacebookAI/roberta-base``,
``google-bert/bert-base-uncased``, ``openai-community/gpt2``) from a configuration written
out here, with that checkpoint's shape and 1000 ImageNet classes, and random weights:
nothing is fetched, so it works offline (the GPU machine has no network). The image
models' parameter counts equal torchvision's published totals (tests/test_zoo.py).

transformers returns output objects; the backends copy one tensor back to the host, so
each model is wrapped in :class:`Picked`, which returns the tensor a server would send:
image logits, the encoders' last hidden state, GPT-2's last-position logits (computed for
that position only, ``logits_to_keep=1``, as a generation server's prefill does).

transformers is imported inside the factories, so importing the zoo stays cheap.
"""

from __future__ import annotations

import torch
from torch import nn


class Picked(nn.Module):
    """A transformers model that returns one tensor: ``pick`` of its output."""

    def __init__(self, model: nn.Module, pick: str) -> None:
        super().__init__()
        if pick not in ("logits", "last_hidden_state", "next_token_logits"):
            raise ValueError(f"unknown output {pick!r}")
        self.model = model
        self.pick = pick

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pick == "logits":
            return self.model(x).logits
        if self.pick == "last_hidden_state":
            return self.model(input_ids=x).last_hidden_state
        out = self.model(input_ids=x, use_cache=False, logits_to_keep=1)
        return out.logits[:, -1]


def _quiet() -> object:
    import transformers

    transformers.logging.set_verbosity_error()
    return transformers


def resnet50() -> nn.Module:
    t = _quiet()
    cfg = t.ResNetConfig(layer_type="bottleneck", depths=[3, 4, 6, 3],
                         hidden_sizes=[256, 512, 1024, 2048], embedding_size=64,
                         num_labels=1000)
    return Picked(t.ResNetForImageClassification(cfg), "logits")


def vit_b16() -> nn.Module:
    t = _quiet()
    cfg = t.ViTConfig(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12,
                      num_attention_heads=12, intermediate_size=3072, num_labels=1000)
    return Picked(t.ViTForImageClassification(cfg), "logits")


def convnext_b() -> nn.Module:
    t = _quiet()
    cfg = t.ConvNextConfig(depths=[3, 3, 27, 3], hidden_sizes=[128, 256, 512, 1024],
                           num_labels=1000)
    return Picked(t.ConvNextForImageClassification(cfg), "logits")


def mobilenet_v2() -> nn.Module:
    t = _quiet()
    cfg = t.MobileNetV2Config(depth_multiplier=1.0, image_size=224, num_labels=1000)
    return Picked(t.MobileNetV2ForImageClassification(cfg), "logits")


def efficientnet_b0() -> nn.Module:
    t = _quiet()
    # hidden_dim must be given: the configuration's defaults describe EfficientNet-B7.
    cfg = t.EfficientNetConfig(width_coefficient=1.0, depth_coefficient=1.0, image_size=224,
                               dropout_rate=0.2, hidden_dim=1280, num_labels=1000)
    return Picked(t.EfficientNetForImageClassification(cfg), "logits")


def roberta_base() -> nn.Module:
    t = _quiet()
    cfg = t.RobertaConfig(vocab_size=50265, hidden_size=768, num_hidden_layers=12,
                          num_attention_heads=12, intermediate_size=3072,
                          max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                          pad_token_id=1, bos_token_id=0, eos_token_id=2)
    return Picked(t.RobertaModel(cfg, add_pooling_layer=False), "last_hidden_state")


def bert_base() -> nn.Module:
    t = _quiet()
    cfg = t.BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                       num_attention_heads=12, intermediate_size=3072)
    return Picked(t.BertModel(cfg, add_pooling_layer=False), "last_hidden_state")


def gpt2_small() -> nn.Module:
    t = _quiet()
    cfg = t.GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
    return Picked(t.GPT2LMHeadModel(cfg), "next_token_logits")
