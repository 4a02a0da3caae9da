"""Expected H2D and compute seconds of (model, size), from the profile.

A live device whose backend does not report phase changes shows policies a phase
*estimated* from these medians (the same figures a policy could look up itself).
"""

from __future__ import annotations

from strait_sim.profile_bundle import ProfileBundle


class PhaseEstimates:
    """Expected (h2d_s, compute_s) of (model, size), cached."""

    def __init__(self, profile: ProfileBundle, pcie: bool) -> None:
        self.profile = profile
        self._links = None
        if pcie and profile.has("transfers"):
            from strait_sim.truth.pcie import fit_link

            try:
                self._links = (fit_link(profile, "h2d"), fit_link(profile, "d2h"))
            except Exception:  # an unfittable table: estimate copies as instantaneous
                self._links = None
        self._cache: dict[tuple[str, int], tuple[float, float]] = {}

    def h2d_compute_s(self, model: str, size: int) -> tuple[float, float]:
        key = (model, size)
        got = self._cache.get(key)
        if got is None:
            h2d = 0.0
            if self._links is not None:
                h2d = self._links[0].alone_ms(self.profile.io_bytes(model)[0] * size) / 1e3
            got = (h2d, self.profile.solo_ms(model, size) / 1e3)
            self._cache[key] = got
        return got
