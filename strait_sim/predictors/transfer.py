"""Host-device copy time under contention, fitted from a bundle's transfers.csv.

:class:`TransferPredictor` uses the project's one link fit
(:func:`strait_sim.truth.pcie.fit_direction`). The two-step fit below
(:func:`fit_link`) remains as the fallback for bundles without copies measured alone and
as one of the reference forms the accuracy study (``predict evaluate``) compares.

Model (per direction, h2d and d2h): a transfer of ``nbytes`` that starts while
``in_flight`` others are already running in the same direction shares the link fairly
with them, so

    time_ms = fixed_ms + nbytes / (bandwidth_bytes_per_ms / (in_flight + 1))

``transfers.csv`` records ``concurrent`` = transfers running at once *including* the
measured one, i.e. ``in_flight + 1``. The fit is the classic latency-bandwidth
("alpha-beta") one, in two steps, because the two coefficients show at opposite ends of a
size range spanning five orders of magnitude, and a single joint fit lets whichever end
has more rows (or more noise) bend the other:

1. the fixed cost from the smallest copies, which are latency-bound: the median time of
   the smallest size at the lowest concurrency (less its own small bytes term, floored
   at 0);
2. the bandwidth from the copies of at least 1 MiB, which are bandwidth-bound, at the
   lowest concurrency measured (normally 1: the link's own throughput, so that fair
   sharing stays an assumption the evaluation can test rather than something the fit
   bends to): least squares in log space, ``log(time - fixed) = log(bytes * concurrent)
   - log(bw)``, i.e. ``1/bw`` is the geometric mean of the per-copy ``(time - fixed) /
   bytes``. Log space makes over- and under-prediction by the same factor cost the same
   (least squares on relative error favours the fastest samples) and tames the outliers
   a shared machine produces. With fewer than three such rows, all copies of at least
   1 MiB, then all copies, are used.

Transfers in the opposite direction (``opposite_active``) are ignored by the model: on a
full-duplex link they do not share bandwidth. How well fair sharing holds on a device is
measured by ``strait-sim predict evaluate`` (against a no-contention and a fitted
partial-sharing reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from strait_sim.errors import UserError

if TYPE_CHECKING:
    from strait_sim.profile_bundle import ProfileBundle

DIRECTIONS = ("h2d", "d2h")
LARGE_COPY_BYTES = 1 << 20  # at least this large: bandwidth-bound


@dataclass(frozen=True)
class LinkFit:
    """One direction's fitted link: fixed cost (ms) and full bandwidth (bytes per ms)."""

    fixed_ms: float
    bandwidth_bytes_per_ms: float
    samples: int

    def time_ms(self, nbytes: float, in_flight: int) -> float:
        return self.fixed_ms + nbytes * (in_flight + 1) / self.bandwidth_bytes_per_ms


def fit_link(nbytes: np.ndarray, concurrent: np.ndarray, time_ms: np.ndarray) -> LinkFit:
    """Fit ``time = fixed + bytes * concurrent / bandwidth`` (see the module doc)."""
    nbytes = np.asarray(nbytes, dtype=float)
    conc = np.asarray(concurrent, dtype=float)
    t = np.asarray(time_ms, dtype=float)
    smallest = nbytes.min()
    at_small = (nbytes == smallest) & (conc == conc.min())
    fixed0 = float(np.median(t[at_small]))
    rows = (nbytes >= LARGE_COPY_BYTES) & (conc == conc.min())
    if rows.sum() < 3:
        rows = nbytes >= LARGE_COPY_BYTES
    if rows.sum() < 3:
        rows = np.ones_like(rows)
    load, excess = nbytes[rows] * conc[rows], t[rows] - fixed0
    usable = excess > 0
    if not usable.any():
        raise UserError("transfers.csv: copy times do not grow with bytes; cannot fit a "
                        "bandwidth")
    # Least squares in log space: log(excess) = log(load) + log(inv_bw).
    inv_bw = float(np.exp(np.mean(np.log(excess[usable] / load[usable]))))
    if not inv_bw > 0:
        raise UserError("transfers.csv: copy times do not grow with bytes; cannot fit a "
                        "bandwidth")
    fixed = max(0.0, fixed0 - smallest * conc.min() * inv_bw)
    return LinkFit(fixed, 1.0 / inv_bw, len(t))


class TransferPredictor:
    """Predicts H2D/D2H copy times from the link fit the truth model uses.

    The fixed cost, the bandwidth and the sharing rule of each direction come from
    :func:`strait_sim.truth.pcie.fit_direction`, the one fit of a link in the project
    (issue 12): a policy predicts copies with the same *form* the simulated device
    follows, fitted from the same measurements, and never reads the truth object itself.
    A copy that starts with ``in_flight`` others active is predicted as one of
    ``in_flight + 1`` concurrent copies under the fitted rule.
    """

    def __init__(self, links: dict[str, LinkFit], fits: dict | None = None) -> None:
        self.links = links
        self.fits = fits or {}
        self.bandwidth_bytes_per_ms = {d: f.bandwidth_bytes_per_ms for d, f in links.items()}
        self.fixed_ms = {d: f.fixed_ms for d, f in links.items()}
        # Plain floats for the hot path.
        self._fixed = dict(self.fixed_ms)
        self._inv_bw = {d: 1.0 / bw for d, bw in self.bandwidth_bytes_per_ms.items()}
        self._shared = {d: (f.rule == "fair") for d, f in self.fits.items()}

    @classmethod
    def fit(cls, transfers: pd.DataFrame, *, label: str = "transfers.csv"
            ) -> TransferPredictor:
        from strait_sim.truth.pcie import fit_direction

        links, fits = {}, {}
        for direction in DIRECTIONS:
            rows = transfers[transfers["direction"] == direction]
            if len(rows["bytes"].unique()) < 2:
                raise UserError(f"{label}: direction '{direction}' needs transfers of at "
                                f"least two sizes to fit a fixed cost and a bandwidth, "
                                f"found {len(rows)} row(s)")
            shared = fit_direction(rows, direction)
            if shared is not None and shared.bytes_per_ms > 0:
                fits[direction] = shared
                links[direction] = LinkFit(shared.fixed_ms, shared.bytes_per_ms, len(rows))
            else:  # no copies measured alone at two sizes: the fit over all copies
                links[direction] = fit_link(rows["bytes"].to_numpy(),
                                            rows["concurrent"].to_numpy(),
                                            rows["time_ms"].to_numpy())
        return cls(links, fits)

    @classmethod
    def from_profile(cls, profile: ProfileBundle) -> TransferPredictor:
        if not profile.has("transfers"):
            raise UserError(f"profile '{profile.name}' has no transfers.csv (copy timings); "
                            "cannot predict H2D/D2H times; profile transfers first")
        assert profile.transfers is not None
        return cls.fit(profile.transfers, label=f"{profile.name}/transfers.csv")

    def predict_ms(self, direction: str, nbytes: float, in_flight: int = 0) -> float:
        """Time (ms) of a copy of ``nbytes`` with ``in_flight`` others already active in
        the same direction (not counting this one)."""
        inv = self._inv_bw.get(direction)
        if inv is None:
            raise UserError(f"unknown transfer direction '{direction}'; valid: d2h, h2d")
        if in_flight and not self._shared.get(direction, True):
            return self.fits[direction].concurrent_ms(nbytes, in_flight + 1)
        return self._fixed[direction] + nbytes * (in_flight + 1) * inv

    def describe(self) -> pd.DataFrame:
        return pd.DataFrame([{"direction": d, "fixed_ms": f.fixed_ms,
                              "bandwidth_gb_per_s": f.bandwidth_bytes_per_ms * 1e3 / 1e9,
                              "samples": f.samples} for d, f in self.links.items()])
