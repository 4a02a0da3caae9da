"""Synthetic profile bundles: test fixtures with known ground truth, named as such.

Nothing here is a measurement. These bundles exist so that tests can check that the
truth model and the predictors recover parameters that are known exactly. Every bundle
made here carries ``"synthetic": true`` in profile.json and a name starting with
``synthetic``.

Generative model (all times in ms):
- solo latency of (model, batch) = base + per_item * batch, times lognormal noise;
- co-location: while both run, each progresses at 1/slowdown[model, co_model] of its solo
  rate (the fluid model the engine uses), so latency = solo + overlap * (1 - 1/s);
- transfers: time = fixed_ms + bytes / (bandwidth / concurrent), per direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from strait_sim.atomic import atomic_dir
from strait_sim.profile_bundle import SCHEMA_VERSION, write_meta, write_table


@dataclass
class SyntheticSpec:
    """Ground truth of a synthetic bundle."""

    models: dict[str, tuple[float, float]] = field(default_factory=lambda: {
        "synth_small": (0.4, 0.05),
        "synth_medium": (1.0, 0.20),
        "synth_large": (2.5, 0.60),
    })  # model -> (base_ms, per_item_ms)
    io_bytes: dict[str, tuple[int, int]] = field(default_factory=lambda: {
        "synth_small": (150_528, 4_000),
        "synth_medium": (150_528, 4_000),
        "synth_large": (602_112, 4_000),
    })
    slowdown: dict[tuple[str, str], float] = field(default_factory=dict)
    batches: tuple[int, ...] = (1, 2, 4, 8)
    reps: int = 12
    noise_cv: float = 0.03
    offsets_frac: tuple[float, ...] = (0.0, 0.25, 0.5)
    bandwidth_gbps: dict[str, float] = field(default_factory=lambda: {"h2d": 12.0, "d2h": 13.0})
    fixed_ms: dict[str, float] = field(default_factory=lambda: {"h2d": 0.010, "d2h": 0.012})
    transfer_sizes: tuple[int, ...] = (4096, 65536, 1 << 20, 16 << 20, 64 << 20)

    def slowdown_of(self, model: str, co_model: str) -> float:
        if (model, co_model) in self.slowdown:
            return self.slowdown[(model, co_model)]
        names = list(self.models)
        # A smooth, asymmetric default: bigger co-runners hurt more.
        return 1.15 + 0.12 * names.index(co_model) + 0.05 * names.index(model)

    def solo_ms(self, model: str, batch: int) -> float:
        base, per_item = self.models[model]
        return base + per_item * batch


def make_synthetic_bundle(out: Path | str, spec: SyntheticSpec | None = None, *,
                          seed: int = 0, name: str = "synthetic-tiny") -> Path:
    """Write a synthetic bundle to ``out`` (atomically) and return its path."""
    spec = spec or SyntheticSpec()
    rng = np.random.default_rng(seed)
    sigma = float(np.sqrt(np.log1p(spec.noise_cv**2)))

    def noisy(x: float) -> float:
        return float(x * rng.lognormal(-sigma**2 / 2, sigma))

    models = pd.DataFrame([
        {"model": m, "params": 0, "input_bytes_per_item": spec.io_bytes[m][0],
         "output_bytes_per_item": spec.io_bytes[m][1]} for m in spec.models
    ])
    solo = pd.DataFrame([
        {"model": m, "batch": b, "rep": r, "latency_ms": noisy(spec.solo_ms(m, b))}
        for m in spec.models for b in spec.batches for r in range(spec.reps)
    ])
    rows = []
    names = list(spec.models)
    for m in names:
        for co in names:
            for b in spec.batches:
                for cb in spec.batches:
                    a_solo, c_solo = spec.solo_ms(m, b), spec.solo_ms(co, cb)
                    for frac in spec.offsets_frac:
                        offset = frac * min(a_solo, c_solo)
                        for r in range(max(2, spec.reps // 4)):
                            lat, co_lat, ov = _fluid_pair(
                                noisy(a_solo), noisy(c_solo), offset,
                                spec.slowdown_of(m, co), spec.slowdown_of(co, m))
                            rows.append({"model": m, "batch": b, "co_model": co, "co_batch": cb,
                                         "offset_ms": offset, "rep": r, "latency_ms": lat,
                                         "co_latency_ms": co_lat, "overlap_ms": ov})
    pairs = pd.DataFrame(rows)
    trows = []
    for direction in ("h2d", "d2h"):
        bw = spec.bandwidth_gbps[direction] * 1e9 / 1e3  # bytes per ms
        for size in spec.transfer_sizes:
            for conc in (1, 2, 4):
                for opp in (0, 1):
                    for r in range(3):
                        t = spec.fixed_ms[direction] + size / (bw / conc)
                        trows.append({"direction": direction, "bytes": size, "concurrent": conc,
                                      "opposite_active": opp, "rep": r, "time_ms": noisy(t)})
    transfers = pd.DataFrame(trows)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "synthetic": True,
        "device": {"name": "synthetic device (test fixture, not a measurement)", "kind": "cpu"},
        "host": {"name": "none"},
        "backend": {"name": "synthetic", "precision": "none", "cuda_graphs": False},
        "software": {},
        "created": "1970-01-01T00:00:00Z",
        "concurrency_measured": 2,
        "generator": {"seed": seed, "module": "strait_sim.synthetic"},
        "notes": "Synthetic test fixture generated by strait_sim.synthetic; no figure in it "
                 "was measured on any device.",
    }
    out = Path(out)
    with atomic_dir(out, "profile", mark=False) as tmp:
        write_meta(tmp, meta)
        write_table(tmp, "models.csv", models)
        write_table(tmp, "solo.csv", solo)
        write_table(tmp, "pairs.csv", pairs)
        write_table(tmp, "transfers.csv", transfers)
    return out


def _fluid_pair(a: float, c: float, offset: float, s_a: float, s_c: float
                ) -> tuple[float, float, float]:
    """Latencies and overlap of A (starts at 0, solo work a) and C (starts at offset,
    solo work c) when each runs at 1/s while both are active."""
    if offset >= a:
        return a, c, 0.0
    rem_a = a - offset  # A's remaining solo work when C starts
    # Both active: A needs rem_a*s_a, C needs c*s_c wall time.
    t_a, t_c = rem_a * s_a, c * s_c
    if t_a <= t_c:
        overlap = t_a
        c_left = c - overlap / s_c
        return offset + t_a, overlap + c_left, overlap
    overlap = t_c
    a_left = rem_a - overlap / s_a
    return offset + overlap + a_left, t_c, overlap


if __name__ == "__main__":  # regenerate the bundled fixture
    import sys

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).parent / "profiles" / "synthetic-tiny"
    make_synthetic_bundle(target)
    print(f"wrote {target}")
