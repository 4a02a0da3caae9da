"""PCIe truth: the one fit of a host-device link, shared by the simulator, ``profile show``
and the transfer predictor (issue 12, item 5).

Per direction, from transfers.csv:

1. Fixed cost and bandwidth from the copies measured alone (``concurrent == 1``, opposite
   direction idle): ``time = fixed_ms + bytes / bandwidth`` by least squares on relative
   error (weights 1/time), so that 4 KiB and 256 MiB copies both count.
2. The sharing rule, chosen by the data from the concurrent copies of at least 1 MiB
   (bandwidth-bound), opposite direction idle. Per round of n copies started together,
   each copy's time less the fixed cost, over its lone time, is its stretch rho:

   - ``serial`` (one copy engine): the copies of a round end one after another, so the
     round's stretches are about 1, 2, ..., n (longest over shortest >= (1 + n) / 2);
   - otherwise the copies share: ``share`` = median over rounds of (mean rho - 1) /
     (n - 1); ``fair`` when it lies within 10% of 1 (each of n copies gets 1/n),
     ``partial`` otherwise, with ``aggregate(n) = n / (1 + (n - 1) share)`` the total
     throughput of n copies relative to one alone (below 1: contention costs
     throughput, as on the development CPU; above 1: concurrency gains some).
3. The coupling of the directions: ``opposite_factor`` = median over sizes >= 1 MiB of
   (lone bandwidth-bound time) / (the same with the opposite direction active), at
   ``concurrent == 1``; exactly 1.0 (full duplex) when within 5% of 1.

The choice and its evidence are recorded on the fit (``rule``, ``share``,
``serial_spread``, ``opposite_factor``) and shown by ``profile show``. The fluid link of
the simulator honours ``sharing``, ``aggregate(n)`` and ``opposite_factor``
(strait_sim/devices/fluid.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from strait_sim.errors import BundleError
from strait_sim.profile_bundle import ProfileBundle

LARGE_COPY_BYTES = 1 << 20
FAIR_TOLERANCE = 0.10
DUPLEX_TOLERANCE = 0.05


@dataclass(frozen=True)
class LinkFit:
    direction: str
    fixed_ms: float
    bytes_per_ms: float  # bandwidth of one copy alone
    samples: int
    rule: str = "fair"  # "fair" | "serial" | "partial": what the data chose
    share: float = 1.0  # stretch of each extra concurrent copy (fair: 1)
    serial_spread: float = float("nan")  # median longest/shortest stretch in a round
    opposite_factor: float = 1.0  # bandwidth multiplier while the other direction is busy
    concurrent_rounds: int = 0  # rounds the rule was chosen from

    @property
    def gbps(self) -> float:
        return self.bytes_per_ms * 1e3 / 1e9

    @property
    def sharing(self) -> str:
        """What the fluid link implements: "serial", or "fair" with ``aggregate``."""
        return "serial" if self.rule == "serial" else "fair"

    def aggregate(self, n: int) -> float:
        """Total throughput of n concurrent copies relative to one copy alone."""
        if n <= 1 or self.rule != "partial":
            return 1.0
        return n / (1.0 + (n - 1) * self.share)

    def alone_ms(self, nbytes: float) -> float:
        return self.fixed_ms + nbytes / self.bytes_per_ms

    def concurrent_ms(self, nbytes: float, n: int) -> float:
        """Time of each of n equal copies started together (serial: the mean one)."""
        if n <= 1:
            return self.alone_ms(nbytes)
        if self.rule == "serial":
            return self.fixed_ms + nbytes * (n + 1) / 2.0 / self.bytes_per_ms
        return self.fixed_ms + nbytes * n / (self.aggregate(n) * self.bytes_per_ms)


def fit_affine(nbytes: np.ndarray, time_ms: np.ndarray) -> tuple[float, float]:
    """(fixed_ms, bytes_per_ms) of ``time = fixed + bytes / bw``, relative least squares."""
    x = np.asarray(nbytes, dtype=float)
    y = np.asarray(time_ms, dtype=float)
    w = 1.0 / y
    design = np.stack([np.ones_like(x), x], axis=1) * w[:, None]
    (fixed, per_byte), *_ = np.linalg.lstsq(design, y * w, rcond=None)
    return max(float(fixed), 0.0), (1.0 / float(per_byte) if per_byte > 0 else float("nan"))


def _sharing(rows: pd.DataFrame, fixed: float, bw: float) -> tuple[str, float, float, int]:
    """(rule, share, serial_spread, rounds) from concurrent bandwidth-bound copies."""
    big = rows[(rows["bytes"] >= LARGE_COPY_BYTES) & (rows["concurrent"] > 1)
               & (rows["opposite_active"] == 0)]
    if len(big) == 0:
        return "fair", 1.0, float("nan"), 0
    rho = (big["time_ms"].to_numpy(dtype=float) - fixed) / (big["bytes"].to_numpy() / bw)
    big = big.assign(rho=np.maximum(rho, 1e-9))
    spreads, shares, expect = [], [], []
    for (n, _, _), g in big.groupby(["concurrent", "bytes", "rep"]):
        if len(g) < 2:
            continue
        spreads.append(float(g["rho"].max() / g["rho"].min()))
        expect.append((1.0 + n) / 2.0)
        shares.append((float(g["rho"].mean()) - 1.0) / (n - 1))
    if not spreads:
        # one row per round (no lanes recorded): sharing from the mean stretch only
        for n, g in big.groupby("concurrent"):
            shares.append((float(g["rho"].median()) - 1.0) / (n - 1))
        share = float(np.median(shares))
        rule = "fair" if abs(share - 1.0) <= FAIR_TOLERANCE else "partial"
        return rule, (1.0 if rule == "fair" else share), float("nan"), len(big)
    spread = float(np.median(spreads))
    if spread >= float(np.median(expect)):
        return "serial", 1.0, spread, len(spreads)
    share = float(np.median(shares))
    rule = "fair" if abs(share - 1.0) <= FAIR_TOLERANCE else "partial"
    return rule, (1.0 if rule == "fair" else share), spread, len(spreads)


def _opposite(rows: pd.DataFrame, fixed: float) -> float:
    big = rows[(rows["bytes"] >= LARGE_COPY_BYTES) & (rows["concurrent"] == 1)]
    ratios = []
    for _, g in big.groupby("bytes"):
        alone = g.loc[g["opposite_active"] == 0, "time_ms"]
        busy = g.loc[g["opposite_active"] == 1, "time_ms"]
        if len(alone) and len(busy):
            ratios.append((float(alone.median()) - fixed) / (float(busy.median()) - fixed))
    if not ratios:
        return 1.0
    f = float(np.median(ratios))
    return 1.0 if abs(f - 1.0) <= DUPLEX_TOLERANCE or not f > 0 else f


def fit_direction(rows: pd.DataFrame, direction: str) -> LinkFit | None:
    """The fit of one direction from its transfers.csv rows; None below two lone sizes."""
    alone = rows[(rows["concurrent"] == 1) & (rows["opposite_active"] == 0)]
    if alone["bytes"].nunique() < 2:
        return None
    fixed, bw = fit_affine(alone["bytes"].to_numpy(), alone["time_ms"].to_numpy())
    if not bw > 0:
        return LinkFit(direction, fixed, float("nan"), len(alone))
    rule, share, spread, rounds = _sharing(rows, fixed, bw)
    return LinkFit(direction, fixed, bw, len(alone), rule, share, spread,
                   _opposite(rows, fixed), rounds)


def fit_link(profile: ProfileBundle, direction: str) -> LinkFit:
    """Fit one direction of the bundle's link (fixed cost, bandwidth, sharing, coupling)."""
    t = profile.transfers
    if t is None or len(t) == 0:
        raise BundleError(f"{profile.name}/transfers.csv",
                          "missing: the simulator needs transfer measurements "
                          "(or run with --no-pcie)")
    fit = fit_direction(t[t["direction"] == direction], direction)
    if fit is None:
        raise BundleError(f"{profile.name}/transfers.csv",
                          f"need {direction} samples alone at two or more sizes to fit the link")
    if not fit.bytes_per_ms > 0:
        raise BundleError(f"{profile.name}/transfers.csv",
                          f"{direction} times do not grow with size; cannot fit a bandwidth")
    return fit
