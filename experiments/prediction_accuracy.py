"""How well does a policy's ``predicted_ms`` match the service it then got, in simulation?

Runs ``strait-sim run`` (the same code path as the CLI) for each load, seed and arrival
process, reads ``requests.parquet`` and compares, per served request, the policy's
prediction at dispatch (``predicted_ms``: dispatch to end of D2H) with the simulated service
(``finish_s - start_s``). Reports the mean absolute percentage error (MAPE), the mean bias
(predicted - observed, ms) and the bias as a share of the mean service time, per
(process, load) over all seeds pooled, and the same for the co-located share of requests.

    .venv/bin/python experiments/prediction_accuracy.py --loads 0.9,1.1,1.3 --seeds 5 \
        --workloads poisson,mmpp,gamma,azure-conv --duration 60

Extra ``--param NAME=VALUE`` flags go to the policy (``--policy`` selects it; strait by
default). The profile is cpu-epyc2-fp32 with ``--max-batch 4`` unless told otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from strait_sim.cli.app import main as cli


def one_run(out: Path, policy: str, profile: str, workload: str, load: float, seed: int,
            duration: float, max_batch: int, params: list[str]) -> pd.DataFrame:
    args = ["run", "--policy", policy, "--profile", profile, "--workload", workload,
            "--load", str(load), "--seed", str(seed), "--duration", str(duration),
            "--max-batch", str(max_batch), "--out", str(out), "-q"]
    if workload == "azure-conv":
        args = [a for a in args if a not in ("--duration", str(duration))]
        args += ["--max-requests", str(int(duration * 12))]
    for p in params:
        args += ["--param", p]
    if cli(args) != 0:
        sys.exit(f"run failed: {' '.join(args)}")
    df = pd.read_parquet(out / "requests.parquet")
    return df[df["start_s"].notna() & df["finish_s"].notna() & df["predicted_ms"].notna()]


def accuracy(df: pd.DataFrame) -> dict:
    obs = (df["finish_s"] - df["start_s"]).to_numpy() * 1e3
    pred = df["predicted_ms"].to_numpy()
    ok = obs > 0
    obs, pred = obs[ok], pred[ok]
    if len(obs) == 0:
        return {"n": 0, "mape": float("nan"), "bias_ms": float("nan"),
                "mean_ms": float("nan"), "bias_share": float("nan")}
    bias = float(np.mean(pred - obs))
    mean = float(np.mean(obs))
    return {"n": len(obs), "mape": float(np.mean(np.abs(pred - obs) / obs)),
            "bias_ms": bias, "mean_ms": mean, "bias_share": bias / mean}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default="strait")
    ap.add_argument("--profile", default="cpu-epyc2-fp32")
    ap.add_argument("--loads", default="0.9,1.1,1.3")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workloads", default="poisson")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--max-batch", type=int, default=4)
    ap.add_argument("--param", action="append", default=[])
    a = ap.parse_args(argv)
    loads = [float(x) for x in a.loads.split(",")]
    print(f"{'process':>11} {'load':>5} {'requests':>8} {'MAPE':>7} {'bias ms':>8} "
          f"{'mean ms':>8} {'bias/mean':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for wl in a.workloads.split(","):
            for load in loads:
                frames = [one_run(Path(tmp) / f"{wl}-{load}-{s}", a.policy, a.profile, wl,
                                  load, s, a.duration, a.max_batch, a.param)
                          for s in range(1, a.seeds + 1)]
                r = accuracy(pd.concat(frames, ignore_index=True))
                print(f"{wl:>11} {load:>5.2f} {r['n']:>8d} {r['mape']:>7.1%} "
                      f"{r['bias_ms']:>+8.1f} {r['mean_ms']:>8.1f} {r['bias_share']:>+9.1%}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
