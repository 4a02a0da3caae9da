"""On-disk cache of fitted predictors, keyed by what the fit depends on.

A simulation sweep builds the same predictor from the same bundle hundreds of times;
fitting (especially ``gbt``) should happen once. The key is a SHA-256 over the training
table, the solo medians the predictor carries, the predictor's name and parameters, the
package version and a fingerprint of this package's source files (so that an edited
predictor, even without a version bump, never loads a pickle of its old self): any
change to any of them refits. Entries are pickles written
atomically; an entry that cannot be read back (truncated, from another Python, tampered)
is ignored and overwritten. A cache folder that cannot be written only costs the refit.

Folder: ``$STRAIT_SIM_CACHE/predictors`` if the variable is set, else
``~/.cache/strait-sim/predictors``. Entries are loaded only from this user's own cache
folder (pickle executes code on load: never point the variable at a shared folder).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from strait_sim.atomic import atomic_path
from strait_sim.predictors.base import InterferencePredictor

if TYPE_CHECKING:
    from strait_sim.profile_bundle import ProfileBundle

CACHE_FORMAT = 1


def cache_dir() -> Path:
    root = os.environ.get("STRAIT_SIM_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "strait-sim"
    return base / "predictors"


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("strait-sim")
    except Exception:  # not installed (e.g. run from a source tree)
        return "0+unknown"


@functools.cache
def code_fingerprint() -> str:
    """SHA-256 over the source of ``strait_sim.predictors`` (names and bytes)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def fit_key(name: str, params: Mapping[str, Any], samples: pd.DataFrame | None,
            profile: ProfileBundle) -> str:
    """The cache key: a hex SHA-256 of everything the fitted predictor depends on."""
    digest = hashlib.sha256()
    header = {"format": CACHE_FORMAT, "name": name, "version": package_version(),
              "code": code_fingerprint(),
              "params": {k: repr(v) for k, v in sorted(params.items())}}
    digest.update(json.dumps(header, sort_keys=True).encode())
    if samples is not None:
        digest.update(",".join(map(str, samples.columns)).encode())
        digest.update(pd.util.hash_pandas_object(samples, index=False).to_numpy().tobytes())
    solo = profile.solo[["model", "batch", "latency_ms"]]
    digest.update(pd.util.hash_pandas_object(solo, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def load_or_fit(name: str, params: Mapping[str, Any], samples: pd.DataFrame | None,
                profile: ProfileBundle,
                fit: Callable[[], InterferencePredictor]) -> InterferencePredictor:
    """Return the cached fit for this key, or call ``fit`` and store the result."""
    key = fit_key(name, params, samples, profile)
    path = cache_dir() / f"{name}-{key[:32]}.pkl"
    cached = _read(path, name)
    if cached is not None:
        return cached
    predictor = fit()
    with contextlib.suppress(OSError, pickle.PicklingError, Exception):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(pickle.dumps(predictor, protocol=pickle.HIGHEST_PROTOCOL))
    return predictor


def _read(path: Path, name: str) -> InterferencePredictor | None:
    try:
        obj = pickle.loads(path.read_bytes())
    except Exception:  # missing, truncated or otherwise unreadable: refit
        return None
    if isinstance(obj, InterferencePredictor) and obj.name == name:
        return obj
    return None
