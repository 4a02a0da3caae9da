"""The GPU session's first step: what device this is, and whether the zoo is torchvision's.

``python -m strait_sim.profiler.device_report --gpu 0 --out device.json`` (or ``--cpu``)
writes one JSON document: the device as a bundle records it (name, driver, clocks,
copy engines, MIG and MPS state; :mod:`.device_info`), the software versions, and a
cross-check of the zoo against torchvision where torchvision loads (the GPU machine's
image has it; the development machine's CPU-only torch does not):

- parameter counts of every zoo model torchvision also defines;
- for the models this zoo re-implements (VGG-16/19, DenseNet-121): torchvision's model
  loads the zoo model's ``state_dict`` unchanged, and both give the same output on one
  random fp32 input on the CPU (relative error reported).

Read-only on the device: nothing is changed, nothing is measured here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

# zoo name -> torchvision constructor name
TORCHVISION_NAMES = {"resnet50": "resnet50", "vit_b16": "vit_b_16",
                     "convnext_b": "convnext_base", "mobilenet_v2": "mobilenet_v2",
                     "efficientnet_b0": "efficientnet_b0", "vgg16": "vgg16", "vgg19": "vgg19",
                     "densenet121": "densenet121"}
SAME_WEIGHTS = ("vgg16", "vgg19", "densenet121")


def torchvision_crosscheck(models: list[str]) -> dict:
    """Compare zoo models with torchvision's (skipped, with the reason, without it)."""
    try:
        import torchvision  # type: ignore[import-untyped]
        from torchvision import models as tvm  # type: ignore[import-untyped]
    except Exception as exc:  # the CPU-only torch here: "operator torchvision::nms ..."
        return {"available": False, "why": f"{type(exc).__name__}: {str(exc)[:160]}"}
    from strait_sim.profiler.zoo import ZOO

    out: dict = {"available": True, "torchvision": torchvision.__version__, "models": {}}
    for name in models:
        if name not in TORCHVISION_NAMES or name not in ZOO:
            continue
        row: dict = {}
        try:
            with torch.device("meta"):
                ours = ZOO[name].factory()
                theirs = getattr(tvm, TORCHVISION_NAMES[name])()
            row["params_zoo"] = sum(p.numel() for p in ours.parameters())
            row["params_torchvision"] = sum(p.numel() for p in theirs.parameters())
            row["params_equal"] = row["params_zoo"] == row["params_torchvision"]
            if name in SAME_WEIGHTS:
                ours = ZOO[name].build(seed=0)
                theirs = getattr(tvm, TORCHVISION_NAMES[name])().eval()
                theirs.load_state_dict(ours.state_dict(), strict=True)
                x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
                with torch.no_grad():
                    a, b = ours(x), theirs(x)
                row["state_dict_loads"] = True
                row["output_rel_error"] = float((a - b).norm() / b.norm())
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        out["models"][name] = row
    return out


def report(kind: str, index: int, models: list[str]) -> dict:
    from strait_sim.profiler.device_info import (
        cpu_device_info,
        cuda_device_info,
        host_info,
        software_versions,
    )

    t0 = time.perf_counter()
    doc: dict = {"kind": kind, "host": host_info(), "software": software_versions()}
    if kind == "cuda":
        doc["device"] = cuda_device_info(index)
        doc["torch_cuda"] = {"available": torch.cuda.is_available(),
                             "device_count": torch.cuda.device_count(),
                             "arch_list": torch.cuda.get_arch_list()}
    else:
        doc["device"] = cpu_device_info()
    try:
        import transformers

        doc["software"]["transformers"] = transformers.__version__
    except Exception as exc:
        doc["software"]["transformers"] = f"unavailable: {type(exc).__name__}"
    doc["zoo_vs_torchvision"] = torchvision_crosscheck(models)
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m strait_sim.profiler.device_report",
                                 description=__doc__.splitlines()[0])
    dev = ap.add_mutually_exclusive_group(required=True)
    dev.add_argument("--gpu", type=int)
    dev.add_argument("--cpu", action="store_true")
    ap.add_argument("--models", default="", help="comma-separated zoo models to cross-check")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    kind = "cpu" if a.cpu else "cuda"
    if kind == "cuda" and not torch.cuda.is_available():
        print(f"device_report: no CUDA GPU visible (torch {torch.__version__}); use --cpu",
              file=sys.stderr)
        return 2
    doc = report(kind, a.gpu or 0, [m for m in a.models.split(",") if m])
    a.out.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    dev_info = doc["device"]
    print(f"device: {dev_info.get('name')} ({kind}); driver {dev_info.get('driver')}; "
          f"copy engines {dev_info.get('copy_engines', {}).get('async_engine_count', '-')}; "
          f"MIG {dev_info.get('mig_mode', '-')}; MPS active "
          f"{dev_info.get('mps', {}).get('active', '-')}; clocks {dev_info.get('clocks')}")
    cross = doc["zoo_vs_torchvision"]
    if cross.get("available"):
        for name, row in cross["models"].items():
            print(f"zoo vs torchvision: {name}: {row}")
    else:
        print(f"zoo vs torchvision: not checked ({cross.get('why')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
