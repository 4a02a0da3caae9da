"""Engine throughput and memory: simulated requests per wall second and peak RSS.

Scenario (issue 2): six models, one GPU with 2 slots, max batch 8, Poisson arrivals at an
offered utilisation of about 0.8 (work counted as each request's solo time at batch 1),
20% high priority, SLO 5x. Each policy runs in its own child process so that its peak
resident memory is its own. The profile is a six-model *synthetic* bundle generated on the
fly (a timing fixture: the engine's speed does not depend on where the numbers came from).

    .venv/bin/python benchmarks/bench_engine.py                      # 1M requests, fifo+priority
    .venv/bin/python benchmarks/bench_engine.py --requests 10000000 --policies fifo
    .venv/bin/python benchmarks/bench_engine.py --policies strait
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {  # name -> (base_ms, per_item_ms): spans cheap to heavy, like the zoo
    "bench_mobilenet": (0.9, 0.10), "bench_resnet": (2.0, 0.35), "bench_vgg": (4.0, 1.10),
    "bench_densenet": (3.0, 0.45), "bench_bert": (2.5, 0.60), "bench_effnet": (1.4, 0.18),
}


def make_bundle(folder: Path) -> Path:
    from strait_sim.synthetic import SyntheticSpec, make_synthetic_bundle

    spec = SyntheticSpec(models=MODELS, io_bytes={m: (602_112, 4_000) for m in MODELS},
                         batches=(1, 2, 4, 8), reps=6)
    return make_synthetic_bundle(folder / "synthetic-bench6", spec, seed=1)


def child(bundle: str, policy: str, requests: int, load: float, seed: int) -> dict:
    from strait_sim.engine.simulator import SimConfig
    from strait_sim.experiment import run_simulation
    from strait_sim.policies.registry import make_policy
    from strait_sim.profile_bundle import read_bundle_dir
    from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

    profile = read_bundle_dir(Path(bundle))
    models = profile.model_names
    mean_work_s = sum(profile.solo_ms(m, 1) for m in models) / len(models) / 1e3
    rate = load / mean_work_s
    wl = BasicPoissonWorkload(models, rate=rate, duration_s=1.2 * requests / rate,
                              hp_fraction=0.2, slo=5.0, max_requests=requests)
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_simulation(profile, wl, make_policy(policy),
                         SimConfig(gpus=1, slots=2, max_batch=8, seed=seed))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {"policy": policy, "requests": len(res.requests), "wall_s": wall,
            "requests_per_s": len(res.requests) / wall,
            "requests_per_cpu_s": len(res.requests) / cpu,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "gpu_busy": res.summary["gpu_busy_fraction"],
            "hp_violation": res.summary["by_class"]["high"]["violation_rate"],
            "lp_violation": res.summary["by_class"]["low"]["violation_rate"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--policies", default="fifo,priority")
    ap.add_argument("--load", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", nargs=2, metavar=("BUNDLE", "POLICY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.requests, args.load,
                               args.seed)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(Path(tmp))
        print(f"{args.requests:,} requests, 6 models, 1 GPU x 2 slots, max batch 8, "
              f"offered load {args.load} (batch-1 solo work)")
        print(f"{'policy':<10} {'requests/s':>12} {'req/CPU-s':>10} {'wall s':>8} "
              f"{'peak MiB':>9} {'busy':>6} {'HP viol':>8} {'LP viol':>8}")
        for policy in args.policies.split(","):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(bundle), policy,
                 "--requests", str(args.requests), "--load", str(args.load),
                 "--seed", str(args.seed)], capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(f"{policy:<10} FAILED: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{policy:<10} {r['requests_per_s']:>12,.0f} "
                  f"{r['requests_per_cpu_s']:>10,.0f} {r['wall_s']:>8.1f} "
                  f"{r['peak_rss_mib']:>9.0f} {r['gpu_busy']:>6.2f} "
                  f"{r['hp_violation']:>8.3f} {r['lp_violation']:>8.3f}")


if __name__ == "__main__":
    main()
