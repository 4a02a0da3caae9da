"""The training table of the interference predictors, built from a profile bundle.

``pairs.csv`` holds raw co-located runs: batch A started at 0, co-runner C started
``offset_ms`` later, the two ran together for ``overlap_ms``. Each run teaches us about
*both* batches (A slowed by C, and C slowed by A over the same overlap), so every run
becomes two rows here, one per point of view, sharing a ``run_id`` so that a train/test
split can keep both views of one run on the same side (otherwise the test set leaks).
``run_id`` is the run's row in pairs.csv, which the profiler appends in measurement
order, so sorting by it replays the runs in the order they happened.

Columns (one row per observed co-located batch):
``run_id, view`` ("first": this batch started first; "second": it started later),
``model, batch, solo_ms, co_model, co_batch, co_solo_ms, offset_ms, rep, overlap_ms,
overlap_fraction, latency_ms, slowdown, started_together``, then ``util_<x>`` and
``co_util_<x>`` (x in sm, l2, dram; fractions 0..1) when the bundle has ``utilization.csv``.

``solo_ms`` is the bundle's median solo latency (interpolated for unmeasured batch sizes),
``overlap_fraction = overlap_ms / solo_ms`` (how much of the batch's own solo duration
was spent beside the co-runner) and ``slowdown = latency_ms / solo_ms``.
``config_offset`` identifies the run's configured start offset (the profiler's
``nominal_offset_frac`` when present, else ``offset_ms`` rounded to a microsecond), so that
repetitions of one configuration can be grouped. ``started_together`` marks the runs
meant to start both batches at once: the profiler's ``nominal_offset_frac == 0`` when
pairs.csv has that column (the measured ``offset_ms`` of such a run is small but not 0),
else ``offset_ms <= 5%`` of the shorter solo latency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from strait_sim.errors import UserError
from strait_sim.profile_bundle import interp_extrap

if TYPE_CHECKING:
    from strait_sim.profile_bundle import ProfileBundle

UTIL_METRICS = ("sm", "l2", "dram")

SAMPLE_COLUMNS = ("run_id", "view", "model", "batch", "solo_ms", "co_model", "co_batch",
                  "co_solo_ms", "offset_ms", "rep", "overlap_ms", "overlap_fraction",
                  "latency_ms", "slowdown", "started_together", "config_offset")
TOGETHER_FRACTION = 0.05


class SoloTable:
    """Median solo latency per (model, batch), as plain floats for the hot path.

    Holds copies of the bundle's medians (not the bundle), so a fitted predictor pickles
    small. Unmeasured batch sizes are interpolated exactly as ``ProfileBundle.solo_ms``
    does, and memoised.
    """

    def __init__(self, profile: ProfileBundle) -> None:
        self._curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._memo: dict[tuple[str, int], float] = {}
        for model, grp in profile.solo.groupby("model"):
            med = grp.groupby("batch")["latency_ms"].median().sort_index()
            xs = med.index.to_numpy(dtype=float)
            ys = med.to_numpy(dtype=float)
            self._curves[str(model)] = (xs, ys)
            for b, y in zip(xs, ys, strict=True):
                self._memo[(str(model), int(b))] = float(y)
        self.profile_name = profile.name

    def __call__(self, model: str, batch: int) -> float:
        key = (model, batch)
        val = self._memo.get(key)
        if val is not None:
            return val
        curve = self._curves.get(model)
        if curve is None:
            raise UserError(f"model '{model}' has no solo samples in profile "
                            f"'{self.profile_name}'; valid: {', '.join(sorted(self._curves))}")
        val = float(interp_extrap(float(batch), *curve))
        self._memo[key] = val
        return val

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(sorted(self._curves))


def _util_lookup(profile: ProfileBundle) -> dict[tuple[str, int], tuple[float, ...]] | None:
    if not profile.has("utilization"):
        return None
    util = profile.utilization
    assert util is not None
    cols = [f"{m}_pct" for m in UTIL_METRICS]
    med = util.groupby(["model", "batch"])[cols].median() / 100.0
    return {(str(m), int(b)): tuple(float(v) for v in row)
            for (m, b), row in zip(med.index, med.to_numpy(), strict=True)}


def util_features(profile: ProfileBundle, model: str, batch: int,
                  table: dict[tuple[str, int], tuple[float, ...]]) -> tuple[float, ...]:
    """Utilization fractions of (model, batch); nearest measured batch of that model when
    this one was not measured, zeros for a model without any row."""
    hit = table.get((model, batch))
    if hit is not None:
        return hit
    batches = [b for (m, b) in table if m == model]
    if not batches:
        return (0.0,) * len(UTIL_METRICS)
    nearest = min(batches, key=lambda b: (abs(np.log(b) - np.log(max(batch, 1))), b))
    return table[(model, nearest)]


def colocation_samples(profile: ProfileBundle) -> pd.DataFrame:
    """One row per observed co-located batch (two per run in pairs.csv); see module doc."""
    if not profile.has("pairs"):
        raise UserError(f"profile '{profile.name}' has no co-located samples (pairs.csv is "
                        "missing or empty); interference predictors need them; profile "
                        "pairs first")
    pairs = profile.pairs
    assert pairs is not None
    solo = SoloTable(profile)
    n = len(pairs)
    run_id = np.arange(n, dtype=np.int64)
    a_solo = np.array([solo(m, int(b)) for m, b in zip(pairs["model"], pairs["batch"],
                                                        strict=True)])
    c_solo = np.array([solo(m, int(b)) for m, b in zip(pairs["co_model"], pairs["co_batch"],
                                                        strict=True)])
    first = pd.DataFrame({
        "run_id": run_id, "view": "first",
        "model": pairs["model"].to_numpy(), "batch": pairs["batch"].to_numpy(),
        "solo_ms": a_solo,
        "co_model": pairs["co_model"].to_numpy(), "co_batch": pairs["co_batch"].to_numpy(),
        "co_solo_ms": c_solo, "offset_ms": pairs["offset_ms"].to_numpy(),
        "rep": pairs["rep"].to_numpy(), "overlap_ms": pairs["overlap_ms"].to_numpy(),
        "latency_ms": pairs["latency_ms"].to_numpy(),
    })
    second = pd.DataFrame({
        "run_id": run_id, "view": "second",
        "model": pairs["co_model"].to_numpy(), "batch": pairs["co_batch"].to_numpy(),
        "solo_ms": c_solo,
        "co_model": pairs["model"].to_numpy(), "co_batch": pairs["batch"].to_numpy(),
        "co_solo_ms": a_solo, "offset_ms": pairs["offset_ms"].to_numpy(),
        "rep": pairs["rep"].to_numpy(), "overlap_ms": pairs["overlap_ms"].to_numpy(),
        "latency_ms": pairs["co_latency_ms"].to_numpy(),
    })
    if "nominal_offset_frac" in pairs.columns:
        nominal = pd.to_numeric(pairs["nominal_offset_frac"], errors="coerce").to_numpy()
        together = np.where(np.isnan(nominal),
                            pairs["offset_ms"].to_numpy() <= TOGETHER_FRACTION
                            * np.minimum(a_solo, c_solo), nominal == 0)
    else:
        together = pairs["offset_ms"].to_numpy() <= TOGETHER_FRACTION * np.minimum(a_solo, c_solo)
    first["started_together"] = together.astype(bool)
    second["started_together"] = together.astype(bool)
    if "nominal_offset_frac" in pairs.columns:
        config = pd.to_numeric(pairs["nominal_offset_frac"], errors="coerce").to_numpy()
    else:
        config = np.round(pairs["offset_ms"].to_numpy(dtype=float), 3)
    first["config_offset"] = config
    second["config_offset"] = config
    out = pd.concat([first, second], ignore_index=True)
    out["batch"] = out["batch"].astype(np.int64)
    out["co_batch"] = out["co_batch"].astype(np.int64)
    out["overlap_fraction"] = out["overlap_ms"] / out["solo_ms"]
    out["slowdown"] = out["latency_ms"] / out["solo_ms"]
    out = out[list(SAMPLE_COLUMNS)]
    table = _util_lookup(profile)
    if table is not None:
        own = np.array([util_features(profile, m, int(b), table)
                        for m, b in zip(out["model"], out["batch"], strict=True)])
        co = np.array([util_features(profile, m, int(b), table)
                       for m, b in zip(out["co_model"], out["co_batch"], strict=True)])
        for i, metric in enumerate(UTIL_METRICS):
            out[f"util_{metric}"] = own[:, i]
            out[f"co_util_{metric}"] = co[:, i]
    return out.sort_values(["run_id", "view"], kind="stable").reset_index(drop=True)


def has_util(samples: pd.DataFrame) -> bool:
    return "util_l2" in samples.columns
