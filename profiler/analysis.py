"""Summaries of a bundle: solo latencies, the slowdown matrix, the fitted link.

Shared by ``strait-sim profile show`` and anyone who wants the same numbers (the truth
model and the predictors read the raw tables; these are the human-readable digests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from strait_sim.profile_bundle import ProfileBundle


def solo_summary(bundle: ProfileBundle) -> pd.DataFrame:
    """Per (model, batch): samples, median, p5, p95 and coefficient of variation (ms)."""
    g = bundle.solo.groupby(["model", "batch"])["latency_ms"]
    out = pd.DataFrame({
        "n": g.size(), "median_ms": g.median(), "p5_ms": g.quantile(0.05),
        "p95_ms": g.quantile(0.95), "cv": g.std(ddof=0) / g.mean()})
    return out.reset_index()


def slowdown_samples(bundle: ProfileBundle) -> pd.DataFrame:
    """Every co-located latency over its solo median, from both sides of each pair run.

    Columns: model, batch, co_model, co_batch, offset_ms, overlap_ms, slowdown.
    """
    if not bundle.has("pairs"):
        return pd.DataFrame(columns=["model", "batch", "co_model", "co_batch", "offset_ms",
                                     "overlap_ms", "slowdown"])
    p = bundle.pairs
    assert p is not None
    med = bundle.solo.groupby(["model", "batch"])["latency_ms"].median().to_dict()
    own = pd.DataFrame({"model": p["model"], "batch": p["batch"], "co_model": p["co_model"],
                        "co_batch": p["co_batch"], "offset_ms": p["offset_ms"],
                        "overlap_ms": p["overlap_ms"], "latency_ms": p["latency_ms"]})
    other = pd.DataFrame({"model": p["co_model"], "batch": p["co_batch"],
                          "co_model": p["model"], "co_batch": p["batch"],
                          "offset_ms": -p["offset_ms"], "overlap_ms": p["overlap_ms"],
                          "latency_ms": p["co_latency_ms"]})
    both = pd.concat([own, other], ignore_index=True)
    solo = np.array([med.get((m, b), np.nan) for m, b in zip(both["model"], both["batch"],
                                                            strict=True)])
    both["slowdown"] = both["latency_ms"].to_numpy() / solo
    return both.dropna(subset=["slowdown"]).drop(columns=["latency_ms"])


def slowdown_matrix(bundle: ProfileBundle) -> pd.DataFrame:
    """Mean slowdown (co-located latency / solo median) of each model (rows) beside each
    co-runner model (columns), over all batches and offsets (partial overlaps included,
    so it understates the slowdown under full overlap)."""
    s = slowdown_samples(bundle)
    if len(s) == 0:
        return pd.DataFrame()
    return s.pivot_table(index="model", columns="co_model", values="slowdown", aggfunc="mean")


@dataclass(frozen=True)
class LinkFit:
    """time_ms = fixed_ms + bytes / bandwidth, fitted on lone copies, with the sharing
    rule and the coupling of the directions (the truth model's fit, for reading)."""

    direction: str
    fixed_ms: float
    gbps: float  # 1e9 bytes per second
    samples: int
    median_rel_error: float
    largest_bytes: int = 0
    largest_gbps: float = float("nan")  # median bytes/time of the largest lone copies
    rule: str = "fair"
    share: float = 1.0
    opposite_factor: float = 1.0


def fit_link(transfers: pd.DataFrame | None) -> dict[str, LinkFit]:
    """Per direction, the truth model's fit (:func:`strait_sim.truth.pcie.fit_direction`:
    one fit for the simulator, this digest and the predictors) plus how well it holds.

    Relative (1/time-weighted) least squares, because sizes span five orders of magnitude.
    Where the device is not affine (a CPU's caches make small copies faster per byte), the
    fit trades large-copy accuracy away, so the bandwidth of the largest copies is
    reported beside it (``largest_gbps``).
    """
    from strait_sim.truth.pcie import fit_direction

    out: dict[str, LinkFit] = {}
    if transfers is None or len(transfers) == 0:
        return out
    for direction, rows in transfers.groupby("direction"):
        fit = fit_direction(rows, str(direction))
        if fit is None:
            continue
        g = rows[(rows["concurrent"] == 1) & (rows["opposite_active"] == 0)]
        x = g["bytes"].to_numpy(dtype=float)
        t = g["time_ms"].to_numpy(dtype=float)
        gbps = fit.gbps if fit.bytes_per_ms > 0 else float("inf")
        pred = fit.fixed_ms + x / fit.bytes_per_ms if fit.bytes_per_ms > 0 else t
        big = x == x.max()
        out[str(direction)] = LinkFit(str(direction), fit.fixed_ms, gbps, len(g),
                                      float(np.median(np.abs(pred - t) / t)), int(x.max()),
                                      float(np.median(x[big] / t[big])) * 1e3 / 1e9,
                                      fit.rule, fit.share, fit.opposite_factor)
    return out
