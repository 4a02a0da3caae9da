"""Predictors by name: the one place the CLI, the evaluation and the policies get them.

``make_predictor(name, profile, **params)`` returns a predictor fitted on the bundle's
co-location samples that :func:`strait_sim.sample_split.split_pairs` gives the predictors
(the odd repetitions of pairs.csv; the simulator's truth model is fitted on the even
ones), cached on disk (see :mod:`strait_sim.predictors.cache`). Why: a predictor fitted on
the very samples the truth model reproduces would be scored in-sample in simulation. A
bundle measured with one repetition has no split; then every sample is used and the
predictor's ``samples_used`` says ``"in-sample"`` so that reports can flag it. Each call
returns a fresh object, so online learners that ``update`` never share state between
simulations.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from strait_sim.errors import UnknownNameError, UserError
from strait_sim.predictors.base import InterferencePredictor
from strait_sim.predictors.ewma import EwmaPredictor
from strait_sim.predictors.gbt import GbtPredictor
from strait_sim.predictors.gpulet import GpuletPredictor
from strait_sim.predictors.linear import LinearPredictor
from strait_sim.predictors.pairs import PairPredictor
from strait_sim.predictors.rls import RlsPredictor
from strait_sim.predictors.sgd import SgdPredictor
from strait_sim.predictors.solo import SoloPredictor

if TYPE_CHECKING:
    import pandas as pd

    from strait_sim.profile_bundle import ProfileBundle

PREDICTORS: dict[str, type[InterferencePredictor]] = {
    cls.name: cls for cls in (SoloPredictor, GpuletPredictor, EwmaPredictor, LinearPredictor,
                              SgdPredictor, RlsPredictor, PairPredictor, GbtPredictor)
}

DESCRIPTIONS = {
    "solo": "no interference: the measured solo latency",
    "gpulet": "GPUlet's static linear slowdown, applied to the whole latency",
    "ewma": "gpulet corrected by a per-pair moving average of observed/predicted",
    "linear": "fine-grained linear (overlap fraction x intensities), static",
    "sgd": "fine-grained linear, updated online by normalised SGD",
    "rls": "fine-grained linear, updated online by RLS with forgetting",
    "pairs": "fluid rate per profiled pair (nearest key, else linear), damped online NLMS per pair",
    "gbt": "gradient-boosted trees (scikit-learn), static non-linear reference",
}


def predictor_names() -> list[str]:
    """Registered predictor names, in a stable order (simplest first)."""
    return list(PREDICTORS)


def predictor_class(name: str) -> type[InterferencePredictor]:
    try:
        return PREDICTORS[name]
    except KeyError:
        raise UnknownNameError("predictor", name, predictor_names()) from None


def predictor_params(name: str) -> dict[str, Any]:
    """Parameter names and defaults of a predictor (``label`` is internal: the name a
    wrapping predictor passes down for its error messages, not a user parameter)."""
    sig = inspect.signature(predictor_class(name).__init__)
    return {p.name: p.default for p in sig.parameters.values()
            if p.name not in ("self", "label")}


def construct(name: str, **params: Any) -> InterferencePredictor:
    """An unfitted predictor; unknown name or parameter -> one-line ``UserError``."""
    cls = predictor_class(name)
    valid = predictor_params(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        listed = ", ".join(valid) or "(none)"
        raise UserError(f"predictor '{name}' has no parameter '{unknown[0]}'; valid: {listed}")
    return cls(**params)


def fit_predictor(name: str, samples: pd.DataFrame | None, profile: ProfileBundle, *,
                  cache: bool = True, **params: Any) -> InterferencePredictor:
    """Construct and fit on ``samples`` (cached when ``cache``)."""
    construct(name, **params)  # validate before anything expensive

    def _fit() -> InterferencePredictor:
        return construct(name, **params).fit(samples, profile)  # type: ignore[arg-type]

    if not cache:
        return _fit()
    from strait_sim.predictors.cache import load_or_fit

    return load_or_fit(name, params, samples, profile, _fit)


SAMPLES_OUT_OF_SAMPLE = "out-of-sample"  # odd reps of pairs.csv; the truth model uses even
SAMPLES_IN_SAMPLE = "in-sample"  # one repetition: predictors and truth share every sample
SAMPLES_NONE = "none"  # solo: no co-location samples needed


def predictor_samples(profile: ProfileBundle) -> tuple[pd.DataFrame, str]:
    """The co-location samples the policies' predictors may learn from, and which kind
    (``"out-of-sample"`` or ``"in-sample"``, see the module docstring)."""
    from strait_sim.predictors.samples import colocation_samples
    from strait_sim.sample_split import split_is_out_of_sample, split_pairs

    samples = colocation_samples(profile)
    if split_is_out_of_sample(samples):
        return split_pairs(samples, "predictors").reset_index(drop=True), SAMPLES_OUT_OF_SAMPLE
    return samples, SAMPLES_IN_SAMPLE


def make_predictor(name: str, profile: ProfileBundle, **params: Any) -> InterferencePredictor:
    """A predictor fitted on the predictors' split of ``profile``'s co-location samples
    (cached on disk); its ``samples_used`` attribute says which split it learnt from.

    ``solo`` needs no co-location samples; every other predictor raises ``UserError``
    when the bundle has no pairs.csv.
    """
    predictor_class(name)
    if name == "solo":
        p = fit_predictor(name, None, profile, **params)
        p.samples_used = SAMPLES_NONE
        return p
    samples, kind = predictor_samples(profile)
    p = fit_predictor(name, samples, profile, **params)
    p.samples_used = kind
    return p
