"""What-if for the intense-load CPU validation (docs/validation.md, "Intense load").

Re-simulates `validate`'s workload (fifo, mobilenet_v2 + efficientnet_b0, Poisson 32/s for
30 s, max batch 4, 2 slots, seed 0) on `cpu-epyc2-fp32` with two knobs of the truth model
changed, to see which of the simulator's inputs explains its pessimism against the live run:

- the clamp on a fitted co-location slowdown (``MAX_SLOWDOWN``, 20 in the engine); seven
  of the profile's 156 fitted pairs sit at the clamp;
- a factor on every solo time (the live run's batch-1 compute alone was 0.73-0.88x the
  profile's solo median on the quiet machine).

Deadlines stay those of the profile (5x its solo median), as in the validation. This
script changes module constants for its own process only; it is a diagnostic, not a mode
of the tool.

    .venv/bin/python experiments/intense_sensitivity.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import strait_sim.truth.compute as compute
from strait_sim.cli.app import main as cli

RUN = ["run", "--policy", "fifo", "--profile", "cpu-epyc2-fp32",
       "--models", "mobilenet_v2,efficientnet_b0", "--rate", "32", "--duration", "30",
       "--max-batch", "4", "--seed", "0"]
CASES = [(20.0, 1.0), (4.0, 1.0), (2.5, 1.0), (20.0, 0.8), (2.5, 0.8)]


def simulate(cap: float, solo_scale: float, out: Path) -> dict:
    compute.MAX_SLOWDOWN = cap
    original = compute.ComputeTruth.__dict__["_solo_quantiles"].__func__

    def scaled(profile, model, max_batch):  # noqa: ANN001, ANN202 - same as the original
        return original(profile, model, max_batch) * solo_scale

    compute.ComputeTruth._solo_quantiles = staticmethod(scaled)
    try:
        if cli(RUN + ["--out", str(out)]) != 0:
            sys.exit(f"run failed for cap {cap}, solo x{solo_scale}")
    finally:
        compute.ComputeTruth._solo_quantiles = staticmethod(original)
    return json.loads((out / "summary.json").read_text())["overall"]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (cap, scale) in enumerate(CASES):
            s = simulate(cap, scale, Path(tmp) / f"r{i}")
            rows.append((cap, scale, s["p50_ms"], s["p99_ms"], s["violation_rate"]))
    print(f"{'slowdown clamp':>14} {'solo x':>7} {'p50 ms':>8} {'p99 ms':>8} {'violations':>10}")
    for cap, scale, p50, p99, viol in rows:
        print(f"{cap:>14g} {scale:>7g} {p50:>8.1f} {p99:>8.1f} {viol:>10.1%}")


if __name__ == "__main__":
    main()
