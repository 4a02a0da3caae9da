"""Same-seed fingerprints of requests.parquet for every policy on the bundled profiles.

Run it on two commits and diff the output: a refactor that claims "results identical" must
print the same lines. Each line: profile, policy, load, max_batch, sha256 of the results table
(columns and values, via pandas' hash of the frame). With ``--gpus`` the same cases also
run on more GPUs (the load is per GPU; the line then ends with ``gpus=N``): placement and
the order of events across GPUs are covered too.

    .venv/bin/python benchmarks/result_hashes.py > /tmp/before.txt
    .venv/bin/python benchmarks/result_hashes.py --gpus 1,4 --duration 10
"""

from __future__ import annotations

import argparse
import hashlib

import pandas as pd

from strait_sim.engine.simulator import SimConfig
from strait_sim.experiment import run_simulation
from strait_sim.policies.registry import make_policy, policy_names
from strait_sim.profile_bundle import read_bundle_dir
from strait_sim.profile_registry import resolve_profile
from strait_sim.workloads.spec import build_workload


def fingerprint(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(",".join(df.columns).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", default="cpu-epyc2-fp32,synthetic-tiny")
    ap.add_argument("--loads", default="0.7,1.2")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--policies", default="")
    ap.add_argument("--gpus", default="1", help="comma-separated GPU counts")
    args = ap.parse_args()
    policies = args.policies.split(",") if args.policies else sorted(policy_names())
    for prof in args.profiles.split(","):
        bundle = read_bundle_dir(resolve_profile(prof)[0])
        for gpus in (int(g) for g in args.gpus.split(",")):
            tag = "" if gpus == 1 else f" gpus={gpus}"
            for load in (float(x) for x in args.loads.split(",")):
                for name in policies:
                    workload = build_workload({"load": load, "duration": args.duration},
                                              bundle, gpus=gpus, max_batch=4)
                    res = run_simulation(bundle, workload, make_policy(name),
                                         SimConfig(gpus=gpus, slots=2, max_batch=4, seed=3))
                    print(prof, name, load, 4, fingerprint(res.requests) + tag, flush=True)


if __name__ == "__main__":
    main()
