"""Host-device copy time under contention, fitted from a bundle's transfers.csv.

Model (per direction, h2d and d2h): a transfer of ``nbytes`` that starts while
``in_flight`` others are already running in the same direction shares the link fairly
with them, so

    time_ms = fixed_ms + nbytes / (bandwidth_bytes_per_ms / (in_flight + 1))

``transfers.csv`` records ``concurrent`` = transfers running at once *including* the
measured one, i.e. ``in_flight + 1``. The two coefficients are fitted by least squares on
relative error (each row weighted by ``1 / time_ms``), because sizes span five orders of
magnitude and plain least squares would ignore the small copies whose time *is* the fixed
cost. A negative fixed cost (possible with noise) is refitted as zero. Transfers in the
opposite direction (``opposite_active``) are ignored by the model: on a full-duplex link
they do not share bandwidth; the evaluation reports how much error that leaves.
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


@dataclass(frozen=True)
class LinkFit:
    """One direction's fitted link: fixed cost (ms) and full bandwidth (bytes per ms)."""

    fixed_ms: float
    bandwidth_bytes_per_ms: float
    samples: int

    def time_ms(self, nbytes: float, in_flight: int) -> float:
        return self.fixed_ms + nbytes * (in_flight + 1) / self.bandwidth_bytes_per_ms


def fit_link(nbytes: np.ndarray, concurrent: np.ndarray, time_ms: np.ndarray) -> LinkFit:
    """Fit ``time = fixed + bytes * concurrent / bandwidth`` on relative error."""
    load = nbytes.astype(float) * concurrent.astype(float)
    t = time_ms.astype(float)
    w = 1.0 / t
    x = np.column_stack([np.ones_like(load), load]) * w[:, None]
    (fixed, inv_bw), *_ = np.linalg.lstsq(x, t * w, rcond=None)
    if fixed < 0:
        fixed = 0.0
        inv_bw = float(np.sum(load * w * t * w) / np.sum((load * w) ** 2))
    if not inv_bw > 0:
        raise UserError("transfers.csv: copy times do not grow with bytes; cannot fit a "
                        "bandwidth")
    return LinkFit(float(fixed), float(1.0 / inv_bw), len(t))


class TransferPredictor:
    """Predicts H2D/D2H copy times with fair sharing between concurrent copies."""

    def __init__(self, links: dict[str, LinkFit]) -> None:
        self.links = links
        self.bandwidth_bytes_per_ms = {d: f.bandwidth_bytes_per_ms for d, f in links.items()}
        self.fixed_ms = {d: f.fixed_ms for d, f in links.items()}
        # Plain floats for the hot path.
        self._fixed = dict(self.fixed_ms)
        self._inv_bw = {d: 1.0 / bw for d, bw in self.bandwidth_bytes_per_ms.items()}

    @classmethod
    def fit(cls, transfers: pd.DataFrame, *, label: str = "transfers.csv"
            ) -> TransferPredictor:
        links = {}
        for direction in DIRECTIONS:
            rows = transfers[transfers["direction"] == direction]
            if len(rows["bytes"].unique()) < 2:
                raise UserError(f"{label}: direction '{direction}' needs transfers of at "
                                f"least two sizes to fit a fixed cost and a bandwidth, "
                                f"found {len(rows)} row(s)")
            links[direction] = fit_link(rows["bytes"].to_numpy(), rows["concurrent"].to_numpy(),
                                        rows["time_ms"].to_numpy())
        return cls(links)

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
        return self._fixed[direction] + nbytes * (in_flight + 1) * inv

    def describe(self) -> pd.DataFrame:
        return pd.DataFrame([{"direction": d, "fixed_ms": f.fixed_ms,
                              "bandwidth_gb_per_s": f.bandwidth_bytes_per_ms * 1e3 / 1e9,
                              "samples": f.samples} for d, f in self.links.items()])
