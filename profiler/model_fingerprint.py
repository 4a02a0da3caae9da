"""Architecture fingerprints: does a profile bundle describe the zoo's model of that name?

A bundle's timings belong to the model definition that was measured. When the zoo's model
of the same name changes (as when the hand-written zoo gave way to the field's libraries),
an old bundle still loads and simulates (the simulator reads only its tables), but a live
run would execute a different network than the one the bundle timed, and a live-vs-sim
comparison would compare two different things. So the profiler records, per model, a
short fingerprint of the architecture it measured (``models.csv`` column
``arch_fingerprint``), and live runs compare it with the zoo's current definition.

The fingerprint hashes what decides the work: every module's path and class name, every
parameter's and persistent buffer's name and shape, and the item input/output shapes. It
ignores weight values, dtype and device, so fp16 on a GPU and fp32 on a CPU agree. The
model is built on PyTorch's ``meta`` device, so no memory is allocated and no weights are
initialised (milliseconds for a large model).

Bundles written before fingerprints existed were all measured with the hand-written zoo;
:data:`LEGACY_FINGERPRINTS` holds that zoo's fingerprints, computed by this function from
the zoo at commit 80858c5 (the last commit with the hand-written models).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping

import torch

from strait_sim.profiler.zoo import ModelSpec

COLUMN = "arch_fingerprint"

# model name -> fingerprint of the hand-written zoo (commit 80858c5) under that name.
LEGACY_FINGERPRINTS: dict[str, str] = {
    "resnet50": "95c4a880e11b",
    "mobilenet_v2": "c92c1b5e54b3",
    "vgg16": "2f1861f0787c",
    "densenet121": "eee17c974444",
    "efficientnet_b0": "c80f32e3b8a3",
    "bert_base": "19da62f02602",
    "gpt2_small": "d24e99ec1a0e",
    "tiny_cnn": "bbba7c10dd71",
    "tiny_mlp": "cfdca9a201e6",
    "tiny_bert": "0330a8a50a40",
}


def module_fingerprint(module: torch.nn.Module, spec: ModelSpec) -> str:
    """12 hex digits over the module tree, tensor names and shapes, and the I/O shapes."""
    tree = [[name, type(m).__name__] for name, m in module.named_modules()]
    tensors = [[name, list(t.shape)] for name, t in module.state_dict().items()]
    doc = {"modules": tree, "tensors": tensors, "input": list(spec.item_input_shape),
           "input_dtype": spec.input_dtype, "output": list(spec.item_output_shape)}
    blob = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


@functools.cache
def _cached(spec: ModelSpec) -> str:
    with torch.device("meta"):
        module = spec.factory()
    return module_fingerprint(module, spec)


def spec_fingerprint(spec: ModelSpec) -> str:
    """The fingerprint of the model ``spec`` builds (built on the meta device, cached)."""
    try:
        return _cached(spec)
    except TypeError:  # an unhashable user spec (e.g. a lambda in a dataclass field)
        with torch.device("meta"):
            module = spec.factory()
        return module_fingerprint(module, spec)


def recorded_fingerprints(models_table: object) -> tuple[dict[str, str], bool]:
    """(model -> fingerprint recorded in a bundle's models.csv, whether it had the column).

    Without the column the bundle predates fingerprints: its models are taken to be the
    hand-written zoo's (:data:`LEGACY_FINGERPRINTS`), names that zoo lacked stay unknown.
    """
    import pandas as pd

    df = models_table if isinstance(models_table, pd.DataFrame) else pd.DataFrame(models_table)
    if COLUMN in df.columns:
        return ({str(m): str(f) for m, f in zip(df["model"], df[COLUMN], strict=True)
                 if isinstance(f, str) and f}, True)
    return ({str(m): LEGACY_FINGERPRINTS[str(m)] for m in df["model"]
             if str(m) in LEGACY_FINGERPRINTS}, False)


def model_mismatches(bundle: object, models: Iterable[str],
                     registry: Mapping[str, ModelSpec]) -> list[str]:
    """One sentence per model whose zoo definition differs from the one ``bundle`` timed."""
    recorded, has_column = recorded_fingerprints(bundle.models)  # type: ignore[attr-defined]
    name = getattr(bundle, "name", "the profile")
    out = []
    for m in models:
        if m not in registry:
            continue  # the runner refuses unknown models with its own message
        now = spec_fingerprint(registry[m])
        was = recorded.get(m)
        if was is None:
            out.append(f"profile '{name}' records no architecture for model '{m}', so it "
                       f"cannot be checked against the zoo's ({now})")
        elif was != now:
            origin = "" if has_column else " (the hand-written zoo of before, as the " \
                                           "profile predates fingerprints)"
            out.append(f"profile '{name}' timed a different '{m}'{origin}: architecture "
                       f"{was} there, {now} in the zoo now")
    return out


def check_live_models(bundle: object, models: Iterable[str], *, allow: bool) -> list[str]:
    """Before a live run: refuse (UserError) when ``bundle`` timed other definitions of
    ``models`` than the zoo's, unless ``allow``; then return the mismatches as warnings."""
    from strait_sim.errors import UserError
    from strait_sim.profiler.zoo import model_registry

    problems = model_mismatches(bundle, list(models), model_registry())
    if problems and not allow:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{problems[0]}{more}: a live run would execute other networks than "
                        f"the profile timed; re-profile this device with the current zoo "
                        f"(for the bundled CPU profile: experiments/remeasure_cpu_profile.sh)"
                        f", or pass --allow-model-mismatch to run anyway")
    return problems
