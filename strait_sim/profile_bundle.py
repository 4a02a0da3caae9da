"""Profile bundles: the measured description of one device (DESIGN.md section 4).

A bundle is a folder of small CSV files plus ``profile.json``, readable and diffable in
review. This module is the single owner of the schema (schema version 1): the profiler
writes with :func:`write_table`, everything else reads with :func:`load_bundle`, and both
check the same column lists, so a bundle that loads is one the simulator can trust.

Validation errors name the file, the line (header = line 1) and the column.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from strait_sim.atomic import atomic_path
from strait_sim.errors import BundleError, UnknownNameError

SCHEMA_VERSION = 1

# Column name -> kind: "str", "int" (>= 0 integer), "pos_int" (>= 1), "float" (finite),
# "nonneg" (finite, >= 0), "pos" (finite, > 0), "flag" (0/1; true/false accepted too).
SCHEMA: dict[str, dict[str, str]] = {
    "models.csv": {"model": "str", "params": "nonneg", "input_bytes_per_item": "nonneg",
                   "output_bytes_per_item": "nonneg"},
    "solo.csv": {"model": "str", "batch": "pos_int", "rep": "int", "latency_ms": "pos"},
    "pairs.csv": {"model": "str", "batch": "pos_int", "co_model": "str", "co_batch": "pos_int",
                  "offset_ms": "nonneg", "rep": "int", "latency_ms": "pos",
                  "co_latency_ms": "pos", "overlap_ms": "nonneg"},
    # 3-way co-location (profile --slots 3), one row per victim: docs/profiling.md
    "triples.csv": {"model": "str", "batch": "pos_int", "co_model": "str",
                    "co_batch": "pos_int", "co2_model": "str", "co2_batch": "pos_int",
                    "rep": "int", "latency_ms": "pos", "overlap_ms": "nonneg"},
    "kernels.csv": {"model": "str", "batch": "pos_int", "seq": "int", "name": "str",
                    "start_us": "nonneg", "duration_us": "nonneg"},
    "transfers.csv": {"direction": "str", "bytes": "pos_int", "concurrent": "pos_int",
                      "opposite_active": "flag", "rep": "int", "time_ms": "pos"},
    "utilization.csv": {"model": "str", "batch": "pos_int", "sm_pct": "nonneg",
                        "l2_pct": "nonneg", "dram_pct": "nonneg"},
}
REQUIRED_FILES = ("profile.json", "models.csv", "solo.csv")
OPTIONAL_FILES = ("pairs.csv", "kernels.csv", "transfers.csv", "utilization.csv",
                  "triples.csv")
REQUIRED_META = ("schema_version", "device", "backend", "created")


@dataclass(frozen=True)
class ProfileBundle:
    """A loaded, validated profile bundle. Tables are read-only by convention."""

    path: Path
    name: str
    meta: Mapping
    models: pd.DataFrame
    solo: pd.DataFrame
    pairs: pd.DataFrame | None = None
    transfers: pd.DataFrame | None = None
    kernels: pd.DataFrame | None = None
    utilization: pd.DataFrame | None = None
    content_hash: str = ""

    # -- model facts ---------------------------------------------------------------------
    @cached_property
    def model_names(self) -> tuple[str, ...]:
        return tuple(self.models["model"].tolist())

    def require_model(self, model: str) -> None:
        if model not in self.model_names:
            raise UnknownNameError("model", model, self.model_names,
                                   where=f"in profile '{self.name}'")

    @cached_property
    def _io_bytes(self) -> dict[str, tuple[float, float]]:
        return {r.model: (float(r.input_bytes_per_item), float(r.output_bytes_per_item))
                for r in self.models.itertuples(index=False)}

    def io_bytes(self, model: str) -> tuple[float, float]:
        """Bytes copied host-to-device and device-to-host per item of ``model``."""
        return self._io_bytes[model]

    @cached_property
    def measured_batches(self) -> dict[str, np.ndarray]:
        """Sorted batch sizes with solo samples, per model."""
        return {m: np.sort(g["batch"].unique()) for m, g in self.solo.groupby("model")}

    @cached_property
    def _solo_medians(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for m, g in self.solo.groupby("model"):
            med = g.groupby("batch")["latency_ms"].median().sort_index()
            out[m] = (med.index.to_numpy(dtype=float), med.to_numpy(dtype=float))
        return out

    def solo_ms(self, model: str, batch: int | float) -> float:
        """Median solo latency of ``model`` at ``batch``, interpolated between measured
        batch sizes and extrapolated beyond them (see :func:`interp_extrap`)."""
        if model not in self._solo_medians:
            self.require_model(model)
            raise BundleError(f"{self.name}/solo.csv", f"no solo samples for model '{model}'")
        xs, ys = self._solo_medians[model]
        return float(interp_extrap(float(batch), xs, ys))

    def has(self, table: str) -> bool:
        """True when the optional table (e.g. 'pairs') is present and non-empty."""
        df = getattr(self, table)
        return df is not None and len(df) > 0

    @property
    def device_name(self) -> str:
        dev = self.meta.get("device", {})
        return str(dev.get("name", "unknown")) if isinstance(dev, Mapping) else str(dev)

    @property
    def device_kind(self) -> str:
        dev = self.meta.get("device", {})
        return str(dev.get("kind", "unknown")) if isinstance(dev, Mapping) else "unknown"


def interp_extrap(x: float, xs: np.ndarray, ys: np.ndarray) -> float:
    """Linear interpolation inside the measured batch sizes ``xs``; outside them, a line
    through the nearest measured value with the least-squares slope of all of them,
    never negative. Latency does not fall with batch size, so beyond the largest
    measured batch the value never drops below the last measurement (a noisy profile
    whose medians dip must not extrapolate to ever-faster batches)."""
    if len(xs) == 1:
        return float(ys[0] * x / xs[0])
    if xs[0] <= x <= xs[-1]:
        return float(np.interp(x, xs, ys))
    slope = max(float(np.polyfit(xs, ys, 1)[0]), 0.0)
    if x > xs[-1]:
        return float(ys[-1] + slope * (x - xs[-1]))
    return float(max(ys[0] - slope * (xs[0] - x), 0.1 * ys[0]))


# -- reading and validation -------------------------------------------------------------


def _check_table(df: pd.DataFrame, fname: str, label: str) -> pd.DataFrame:
    spec = SCHEMA[fname]
    where = f"{label}/{fname}"
    missing = [c for c in spec if c not in df.columns]
    if missing:
        raise BundleError(where, f"missing column(s) {', '.join(missing)}", line=1)
    for col, kind in spec.items():
        raw = df[col]
        if kind == "str":
            bad = raw.isna() | (raw.astype(str).str.strip() == "")
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise BundleError(where, "empty value", line=row + 2, column=col)
            df[col] = raw.astype(str).str.strip()
            continue
        if kind == "flag":  # 0/1, or true/false as other tools write booleans
            raw = _flag_numbers(raw)
            kind = "int"
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna().to_numpy() | ~np.isfinite(num.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise BundleError(where, f"not a finite number: {raw.iloc[row]!r}",
                              line=row + 2, column=col)
        vals = num.to_numpy(dtype=float)
        if kind in ("int", "pos_int"):
            nonint = vals != np.round(vals)
            if nonint.any():
                row = int(np.flatnonzero(nonint)[0])
                raise BundleError(where, f"not an integer: {raw.iloc[row]!r}", line=row + 2,
                                  column=col)
        floor = {"int": 0, "pos_int": 1, "nonneg": 0}.get(kind)
        if floor is not None:
            low = vals < floor
            if low.any():
                row = int(np.flatnonzero(low)[0])
                raise BundleError(where, f"must be >= {floor}, got {raw.iloc[row]!r}",
                                  line=row + 2, column=col)
        if kind == "pos":
            low = vals <= 0
            if low.any():
                row = int(np.flatnonzero(low)[0])
                raise BundleError(where, f"must be > 0, got {raw.iloc[row]!r}", line=row + 2,
                                  column=col)
        cap = TIME_CAPS.get(col)
        if cap is not None and (vals > cap).any():
            row = int(np.flatnonzero(vals > cap)[0])
            raise BundleError(where, f"{raw.iloc[row]!r} is above one hour ({cap:,.0f}): a "
                              f"batch's time is milliseconds to seconds; is the unit wrong?",
                              line=row + 2, column=col)
        df[col] = vals.astype(np.int64) if kind in ("int", "pos_int") else vals
    return df


# A batch's or a copy's time above an hour is a unit error (seconds or nanoseconds written
# as milliseconds), and a time near 1e300 overflowed the simulator's arithmetic: refused
# when the bundle is read, naming the line.
TIME_CAPS = {col: 3.6e6 for col in ("latency_ms", "co_latency_ms", "overlap_ms", "offset_ms",
                                     "time_ms")} | {"start_us": 3.6e9, "duration_us": 3.6e9}


_FLAG_WORDS = {"true": "1", "false": "0", "yes": "1", "no": "0"}


def _flag_numbers(raw: pd.Series) -> pd.Series:
    """A boolean column as 0/1 text: true/false (any case) become 1/0; anything else is
    left as written, so that the number check names it."""
    words = raw.astype(str).str.strip().str.lower()
    return raw.where(~words.isin(_FLAG_WORDS), words.map(_FLAG_WORDS))


def _read_csv(path: Path, fname: str, label: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise BundleError(f"{label}/{fname}", "file is empty (no header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise BundleError(f"{label}/{fname}", f"not a readable CSV file: {first}") from None
    df.columns = [c.strip() for c in df.columns]
    return _check_table(df, fname, label)


def _check_models(df: pd.DataFrame, fname: str, label: str, known: set[str],
                  columns: tuple[str, ...]) -> None:
    for col in columns:
        unknown = ~df[col].isin(known)
        if unknown.any():
            row = int(np.flatnonzero(unknown.to_numpy())[0])
            raise BundleError(f"{label}/{fname}",
                              f"model '{df[col].iloc[row]}' is not in models.csv",
                              line=row + 2, column=col)


def _read_meta(path: Path, label: str) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BundleError(f"{label}/profile.json", f"not UTF-8 text (byte {exc.start}): "
                          "not a profile.json") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{label}/profile.json", f"not valid JSON: {exc.msg}",
                          line=exc.lineno) from None
    if not isinstance(meta, dict):
        raise BundleError(f"{label}/profile.json", "must hold a JSON object")
    for key in REQUIRED_META:
        if key not in meta:
            raise BundleError(f"{label}/profile.json", f"missing key '{key}'")
    if meta["schema_version"] != SCHEMA_VERSION:
        raise BundleError(f"{label}/profile.json",
                          f"schema_version {meta['schema_version']!r} is not supported "
                          f"(this strait-sim reads version {SCHEMA_VERSION})")
    if not isinstance(meta["device"], dict) or "name" not in meta["device"] \
            or meta["device"].get("kind") not in ("cuda", "cpu"):
        raise BundleError(f"{label}/profile.json",
                          "'device' must be an object with 'name' and 'kind' (cuda or cpu)")
    return meta


def hash_bundle_dir(path: Path) -> str:
    """SHA-256 over the bundle's schema files, names and bytes (order-independent)."""
    digest = hashlib.sha256()
    for fname in sorted(set(REQUIRED_FILES) | set(OPTIONAL_FILES)):
        fpath = path / fname
        if fpath.exists():
            digest.update(fname.encode())
            digest.update(fpath.read_bytes())
    return digest.hexdigest()


def load_bundle(spec: str | Path) -> ProfileBundle:
    """Load a bundle given a registered name or a folder path; validate it whole."""
    from strait_sim.profile_registry import resolve_profile

    path, name = resolve_profile(spec)
    return read_bundle_dir(path, name=name)


def read_bundle_dir(path: Path, *, name: str | None = None) -> ProfileBundle:
    """Read and validate the bundle folder at ``path``."""
    path = Path(path)
    label = name or path.name
    if not path.is_dir():
        raise BundleError(str(path), "profile bundle folder not found")
    for fname in REQUIRED_FILES:
        if not (path / fname).is_file():
            raise BundleError(f"{label}/{fname}", "required file is missing")
    meta = _read_meta(path / "profile.json", label)
    tables: dict[str, pd.DataFrame | None] = {}
    for fname in ("models.csv", "solo.csv") + OPTIONAL_FILES:
        fpath = path / fname
        tables[fname] = _read_csv(fpath, fname, label) if fpath.is_file() else None
    models = tables["models.csv"]
    assert models is not None
    if len(models) == 0:
        raise BundleError(f"{label}/models.csv", "lists no models")
    dup = models["model"].duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise BundleError(f"{label}/models.csv",
                          f"model '{models['model'].iloc[row]}' listed twice",
                          line=row + 2, column="model")
    known = set(models["model"])
    for fname, cols in (("solo.csv", ("model",)), ("pairs.csv", ("model", "co_model")),
                        ("triples.csv", ("model", "co_model", "co2_model")),
                        ("kernels.csv", ("model",)), ("utilization.csv", ("model",))):
        df = tables[fname]
        if df is not None:
            _check_models(df, fname, label, known, cols)
    solo = tables["solo.csv"]
    assert solo is not None
    if len(solo) == 0:
        raise BundleError(f"{label}/solo.csv", "holds no samples")
    no_solo = sorted(known - set(solo["model"]))
    if no_solo:
        raise BundleError(f"{label}/solo.csv", f"no samples for model(s) {', '.join(no_solo)}")
    transfers = tables["transfers.csv"]
    if transfers is not None:
        bad = ~transfers["direction"].isin(["h2d", "d2h"])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            got = transfers["direction"].iloc[row]
            raise BundleError(f"{label}/transfers.csv",
                              f"direction must be h2d or d2h, got '{got}'",
                              line=row + 2, column="direction")
    pairs = tables["pairs.csv"]
    if pairs is not None:
        too_long = pairs["overlap_ms"] > np.minimum(pairs["latency_ms"],
                                                   pairs["co_latency_ms"]) * 1.001 + 1e-6
        if too_long.any():
            row = int(np.flatnonzero(too_long.to_numpy())[0])
            raise BundleError(f"{label}/pairs.csv",
                              "overlap_ms exceeds the shorter of the two latencies",
                              line=row + 2, column="overlap_ms")
    return ProfileBundle(
        path=path, name=label, meta=meta, models=models, solo=solo, pairs=pairs,
        transfers=transfers, kernels=tables["kernels.csv"],
        utilization=tables["utilization.csv"], content_hash=hash_bundle_dir(path),
    )


# -- writing (used by the profiler and the synthetic fixture) ---------------------------


def write_table(folder: Path, fname: str, df: pd.DataFrame) -> None:
    """Write one schema table atomically, columns in schema order first, extras after."""
    spec = list(SCHEMA[fname])
    missing = [c for c in spec if c not in df.columns]
    if missing:
        raise ValueError(f"{fname}: missing column(s) {missing}")
    ordered = df[spec + [c for c in df.columns if c not in spec]]
    with atomic_path(Path(folder) / fname) as tmp:
        ordered.to_csv(tmp, index=False, float_format="%.6g")


def write_meta(folder: Path, meta: Mapping) -> None:
    """Write profile.json atomically (keys sorted for diffable bundles)."""
    meta = dict(meta)
    meta.setdefault("schema_version", SCHEMA_VERSION)
    with atomic_path(Path(folder) / "profile.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return str(obj)
