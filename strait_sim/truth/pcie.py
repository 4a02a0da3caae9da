"""PCIe truth: one link per direction per GPU, bandwidth shared fairly among transfers.

From transfers.csv, per direction, the samples taken alone (concurrent == 1, opposite
direction idle) are fitted to ``time = fixed_ms + bytes / bandwidth`` by least squares on
relative error (weights 1/time^2), so that 4 KiB and 256 MiB copies both count. In the
simulation a transfer first waits its fixed cost (latency: it does not use bandwidth),
then shares the link's bandwidth equally with every other transfer in that phase
(processor sharing, the fluid model). The two directions are independent (full duplex);
the measured effect of the opposite direction is reported by ``profile show`` but not
modelled (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strait_sim.errors import BundleError
from strait_sim.profile_bundle import ProfileBundle


@dataclass(frozen=True)
class LinkFit:
    direction: str
    fixed_ms: float
    bytes_per_ms: float  # bandwidth
    samples: int

    @property
    def gbps(self) -> float:
        return self.bytes_per_ms * 1e3 / 1e9

    def alone_ms(self, nbytes: float) -> float:
        return self.fixed_ms + nbytes / self.bytes_per_ms


def fit_link(profile: ProfileBundle, direction: str) -> LinkFit:
    """Fit fixed cost and bandwidth of one direction from solo transfers."""
    t = profile.transfers
    if t is None or len(t) == 0:
        raise BundleError(f"{profile.name}/transfers.csv",
                          "missing: the simulator needs transfer measurements "
                          "(or run with --no-pcie)")
    alone = t[(t["direction"] == direction) & (t["concurrent"] == 1)
              & (t["opposite_active"] == 0)]
    if alone["bytes"].nunique() < 2:
        raise BundleError(f"{profile.name}/transfers.csv",
                          f"need {direction} samples alone at two or more sizes to fit the link")
    x = alone["bytes"].to_numpy(dtype=float)
    y = alone["time_ms"].to_numpy(dtype=float)
    w = 1.0 / y
    design = np.stack([np.ones_like(x), x], axis=1) * w[:, None]
    (fixed, per_byte), *_ = np.linalg.lstsq(design, y * w, rcond=None)
    if per_byte <= 0:
        raise BundleError(f"{profile.name}/transfers.csv",
                          f"{direction} times do not grow with size; cannot fit a bandwidth")
    return LinkFit(direction, max(float(fixed), 0.0), 1.0 / float(per_byte), len(alone))
