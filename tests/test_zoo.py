"""The model zoo: the field's definitions, their sizes, and the architecture fingerprints.

Parameter counts are torchvision's published totals (``num_params`` in torchvision's
weights metadata, models/*.py), checked against torchvision's source: a model of the
same name must do the same work on the CPU and on the GPU, and as in the literature.
Counting runs on PyTorch's meta device, so the large models cost no memory or time.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from strait_sim.errors import UserError
from strait_sim.profiler.model_fingerprint import (
    LEGACY_FINGERPRINTS,
    check_live_models,
    model_mismatches,
    spec_fingerprint,
)
from strait_sim.profiler.zoo import DEFAULT_MODELS, PAPER_MODELS, TINY_MODELS, ZOO

TORCHVISION_PARAMS = {
    "resnet50": 25_557_032,
    "vit_b16": 86_567_656,
    "convnext_b": 88_591_464,
    "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "densenet121": 7_978_856,
}
# transformers' checkpoints' shapes, counted by this zoo (no torchvision counterpart):
# RoBERTa-base without the pooler (the encoder's last hidden state is the output).
OTHER_PARAMS = {"roberta_base": 124_055_040}


def meta_params(name: str) -> int:
    with torch.device("meta"):
        module = ZOO[name].factory()
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS | OTHER_PARAMS))
def test_parameter_counts_match_the_reference_definitions(name: str) -> None:
    assert meta_params(name) == (TORCHVISION_PARAMS | OTHER_PARAMS)[name]


def test_faithful_definitions_use_torchvisions_state_dict_names() -> None:
    with torch.device("meta"):
        vgg = ZOO["vgg19"].factory()
        dense = ZOO["densenet121"].factory()
    vgg_keys = set(vgg.state_dict())
    assert {"features.0.weight", "features.34.weight", "classifier.0.weight",
            "classifier.6.bias"} <= vgg_keys
    assert sum(k.startswith("features.") and k.endswith(".weight") for k in vgg_keys) == 16
    dense_keys = set(dense.state_dict())
    assert {"features.conv0.weight", "features.denseblock1.denselayer1.norm1.running_var",
            "features.denseblock4.denselayer16.conv2.weight", "features.transition3.conv.weight",
            "features.norm5.bias", "classifier.weight"} <= dense_keys


def test_paper_and_default_models_are_in_the_zoo_and_tiny_ones_stay() -> None:
    assert set(PAPER_MODELS) <= set(DEFAULT_MODELS) <= set(ZOO)
    assert "yolov8n" not in ZOO  # not buildable without ultralytics (docs/profiling.md)
    assert all(ZOO[n].tiny for n in TINY_MODELS)
    assert not any(ZOO[n].tiny for n in DEFAULT_MODELS)


class HostSyncSpy(TorchDispatchMode):
    """Records operators that read a tensor value on the host (they break CUDA graphs)."""

    SYNC = ("aten._local_scalar_dense", "aten.nonzero", "aten.equal", "aten.is_nonzero")

    def __init__(self) -> None:
        super().__init__()
        self.hits: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if str(func).startswith(self.SYNC):
            self.hits.add(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER_MODELS)
def test_paper_models_run_and_never_sync_the_host(name: str) -> None:
    """The output is the spec's, and the forward reads no tensor value on the host, the
    CPU-side stand-in for 'capturable as a CUDA graph' (no GPU here)."""
    spec = ZOO[name]
    module = spec.build()
    x = spec.make_input(1, "fp32", torch.Generator().manual_seed(0))
    spy = HostSyncSpy()
    with torch.no_grad(), spy:
        y = module(x)
    assert tuple(y.shape) == (1, *spec.item_output_shape)
    assert torch.isfinite(y).all()
    assert spy.hits == set()


def test_transformers_builds_are_deterministic() -> None:
    a = ZOO["mobilenet_v2"].build(seed=5)
    b = ZOO["mobilenet_v2"].build(seed=5)
    c = ZOO["mobilenet_v2"].build(seed=6)
    wa, wb, wc = (next(iter(m.parameters())) for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_fingerprints_tell_the_old_zoo_from_the_new() -> None:
    for name in TINY_MODELS:  # unchanged classes: unchanged fingerprints
        assert spec_fingerprint(ZOO[name]) == LEGACY_FINGERPRINTS[name]
    for name in ("resnet50", "mobilenet_v2", "vgg16", "densenet121", "efficientnet_b0",
                 "bert_base"):
        assert spec_fingerprint(ZOO[name]) != LEGACY_FINGERPRINTS[name]
    # built on the meta device, yet the same as the real module's
    from strait_sim.profiler.model_fingerprint import module_fingerprint

    assert module_fingerprint(ZOO["tiny_cnn"].build(), ZOO["tiny_cnn"]) == \
        spec_fingerprint(ZOO["tiny_cnn"])


def test_live_runs_refuse_a_bundle_of_other_definitions(tmp_path) -> None:
    import shutil

    import pandas as pd

    from strait_sim.profile_bundle import load_bundle, read_bundle_dir

    # a bundle from before fingerprints (the hand-written zoo's): the bundled profile's
    # files without the column (the bundle itself was re-measured with the current zoo)
    legacy = tmp_path / "legacy"
    shutil.copytree(load_bundle("cpu-epyc2-fp32").path, legacy)
    models = pd.read_csv(legacy / "models.csv")
    models.drop(columns=["arch_fingerprint"]).to_csv(legacy / "models.csv", index=False)
    bundle = read_bundle_dir(legacy)
    assert not model_mismatches(load_bundle("cpu-epyc2-fp32"), bundle.model_names, ZOO)
    problems = model_mismatches(bundle, bundle.model_names, ZOO)
    assert len(problems) == len(bundle.model_names)
    assert all("hand-written zoo" in p for p in problems)
    with pytest.raises(UserError, match="remeasure_cpu_profile.sh"):
        check_live_models(bundle, ["resnet50"], allow=False)
    assert len(check_live_models(bundle, ["resnet50"], allow=True)) == 1


def test_a_bundle_recording_the_zoos_fingerprints_passes(tmp_path) -> None:
    from strait_sim.cli.app import main
    from strait_sim.profile_bundle import read_bundle_dir

    out = tmp_path / "b"
    assert main(["profile", "--cpu", "--models", "tiny_mlp", "--batches", "1", "--reps", "2",
                 "--warmup", "1", "--only", "solo", "--out", str(out), "--force",
                 "--threads-per-stream", "1"]) == 0
    bundle = read_bundle_dir(out)
    assert bundle.models["arch_fingerprint"].tolist() == [LEGACY_FINGERPRINTS["tiny_mlp"]]
    assert model_mismatches(bundle, ["tiny_mlp"], ZOO) == []
    # a recorded fingerprint that differs is reported, without the legacy wording
    bundle.models.loc[0, "arch_fingerprint"] = "0123456789ab"
    (problem,) = model_mismatches(bundle, ["tiny_mlp"], ZOO)
    assert "0123456789ab" in problem and "hand-written" not in problem
