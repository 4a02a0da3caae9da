"""Engine speed as a ratio to the leanest SimPy model, at 1, 64 and 1,024 GPUs, and memory.

Scenario (issue 2): six models, GPUs with 2 slots each, max batch 8, Poisson arrivals at an
offered utilisation of about 0.8 *per GPU* (work counted as each request's solo time at
batch 1; the arrival rate scales with the GPUs, so every GPU sees the same load), 20% high
priority, SLO 5x. The profile is a six-model *synthetic* bundle generated on the fly (a
timing fixture: the engine's speed does not depend on where the numbers came from).

The yardstick (issue 15) is benchmarks/reference_mm1.py, the leanest SimPy M/M/1 a user
would write, measured in the same run (before and after the engine runs; ratios use the
faster of the two, so they are conservative). Every engine run and the reference run in
their own child process, so each peak resident memory is its own. Reported per run:
requests per CPU second of the event loop, its ratio to the reference, CPU microseconds
per request and its ratio to the same policy at 1 GPU; beside them the run's fixed costs
in CPU seconds (setup: the driver and the truth model's calibration; results: the table
and the summary), which do not depend on the requests' count in the same way. Targets
(issue 15): fifo >= 1.0x the reference, strait >= 0.5x, per-request cost at 1,024 GPUs
<= 1.25x that at 1 GPU. A shared, busy machine
moves these figures between runs: quote ratios from one run, and say so. With
``--repeats N`` every case runs N times, in interleaved rounds, and keeps its fastest run
(noise only adds time), the reference too.

    .venv/bin/python benchmarks/bench_engine.py                       # 200k requests each
    .venv/bin/python benchmarks/bench_engine.py --gpus 1 --policies fifo --requests 10000000
    .venv/bin/python benchmarks/bench_engine.py --policies strait --gpus 1,64
    .venv/bin/python benchmarks/bench_engine.py --repeats 3       # the fastest of 3 each
    .venv/bin/python benchmarks/bench_engine.py --gpus 1 --models 6,100  # flat in models?
    .venv/bin/python benchmarks/bench_engine.py --ladder --policies fifo  # what each feature costs
    .venv/bin/python benchmarks/bench_engine.py --ladder --policies fifo --gpus 1,1024  # and growth
    .venv/bin/python benchmarks/bench_engine.py --gpus 1 --policies fifo --stream \
        --requests 100000000                   # results streamed to disk, as --out does

With ``--stream`` each run writes its results folder (requests.parquet streamed in row
groups, summary.json from the file) into a temporary folder, as ``strait-sim run --out``
does, instead of building the results table in memory: peak memory then holds only the
requests in flight. The reference runs at most ``--reference-requests`` requests (its
rate per request does not depend on the count).
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
TARGET_REF = {"fifo": 1.0, "strait": 0.5}  # requests/CPU-s as a multiple of the reference
TARGET_FLAT = 1.25  # per-request cost at the most GPUs / at 1 GPU


def make_bundle(folder: Path, n_models: int = 6) -> Path:
    """The six-model synthetic bundle; with ``n_models`` above 6, more models added to
    it (solo times only: their co-location slowdowns are the truth model's means for
    unmeasured pairs, so the bundle's calibration costs what the six models' costs)."""
    import numpy as np
    import pandas as pd

    from strait_sim.profile_bundle import write_table
    from strait_sim.synthetic import SyntheticSpec, make_synthetic_bundle

    spec = SyntheticSpec(models=MODELS, io_bytes={m: (602_112, 4_000) for m in MODELS},
                         batches=(1, 2, 4, 8), reps=6)
    if n_models == 6:
        return make_synthetic_bundle(folder / "synthetic-bench6", spec, seed=1)
    if n_models < 6:
        raise SystemExit("--models must be at least 6")
    path = make_synthetic_bundle(folder / f"synthetic-bench{n_models}", spec, seed=1)
    rng = np.random.default_rng(n_models)
    base = list(MODELS.values())
    extra = {f"bench_m{k:03d}": base[k % len(base)] for k in range(6, n_models)}
    solo = pd.read_csv(path / "solo.csv")
    models = pd.read_csv(path / "models.csv")
    solo = pd.concat([solo, pd.DataFrame([
        {"model": m, "batch": b, "rep": r,
         "latency_ms": (base_ms + per_item * b) * float(rng.lognormal(0.0, 0.03))}
        for m, (base_ms, per_item) in extra.items() for b in spec.batches
        for r in range(spec.reps)])], ignore_index=True)
    models = pd.concat([models, pd.DataFrame([
        {"model": m, "params": 0, "input_bytes_per_item": 602_112,
         "output_bytes_per_item": 4_000} for m in extra])], ignore_index=True)
    write_table(path, "solo.csv", solo)
    write_table(path, "models.csv", models)
    return path


def child(bundle: str, policy: str, requests: int, load: float, seed: int,
          gpus: int = 1, stream_to: str | None = None, slots: int = 2,
          pcie: bool = True, interference: bool = True) -> dict:
    """One engine run, timed in three parts: setup (building the driver, the truth model's
    calibration included: a fixed cost per run), the event loop (what the per-request
    figures use) and the results (table and summary). With ``stream_to`` the run goes
    through ``run_simulation(out=...)`` as ``--out`` does, timed as one part."""
    from strait_sim.engine.simulator import SimConfig, make_sim_driver
    from strait_sim.experiment import build_summary, run_simulation
    from strait_sim.policies.registry import make_policy
    from strait_sim.profile_bundle import read_bundle_dir
    from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

    profile = read_bundle_dir(Path(bundle))
    models = profile.model_names
    mean_work_s = sum(profile.solo_ms(m, 1) for m in models) / len(models) / 1e3
    rate = load * gpus / mean_work_s
    wl = BasicPoissonWorkload(models, rate=rate, duration_s=1.2 * requests / rate,
                              hp_fraction=0.2, slo=5.0, max_requests=requests)
    config = SimConfig(gpus=gpus, slots=slots, max_batch=8, seed=seed, pcie=pcie,
                       interference=interference)
    pol = make_policy(policy)
    t0, c0 = time.perf_counter(), time.process_time()
    events = None
    if stream_to is not None:
        summary = run_simulation(profile, wl, pol, config,
                                 out=Path(stream_to) / "run").summary
        c1 = c2 = c0
    else:
        driver = make_sim_driver(profile, wl, pol, config)
        c1 = time.process_time()
        outcome = driver.run()
        c2 = time.process_time()
        # entries the clock's heap ever held (its insertion counter): every one was
        # popped, as the loop runs until the heap is empty; arrivals are not among them
        events = next(driver.clock._eid)
        df = outcome.records.to_frame(outcome.models, release=True)
        summary = build_summary(df, outcome, profile, wl, pol, config,
                                time.perf_counter() - t0)
    wall = time.perf_counter() - t0
    c3 = time.process_time()
    n = summary["requests"]
    loop = c2 - c1 if stream_to is None else c3 - c0
    return {"policy": policy, "gpus": gpus, "requests": n, "wall_s": wall,
            "cpu_s": loop, "setup_cpu_s": None if stream_to else c1 - c0,
            "results_cpu_s": None if stream_to else c3 - c2,
            "total_cpu_s": c3 - c0,
            "events_per_request": None if events is None else events / n,
            "batches_per_request": summary["engine"]["batches"] / n if n else 0.0,
            "requests_per_s": n / wall, "requests_per_cpu_s": n / loop,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "gpu_busy": summary["gpu_busy_fraction"],
            "hp_violation": summary["by_class"]["high"]["violation_rate"],
            "lp_violation": summary["by_class"]["low"]["violation_rate"]}


def _run_child(args: list[str]) -> dict | str:
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        return "FAILED: " + " ".join(out.stderr.strip().splitlines()[-1:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fastest(runs: list[dict | str]) -> dict | str:
    """The run with the most requests per CPU second (a failure if every run failed).
    On a shared machine the fastest of several runs is the closest to the code's own
    cost: noise only ever adds time."""
    ok = [r for r in runs if isinstance(r, dict)]
    return max(ok, key=lambda r: r["requests_per_cpu_s"]) if ok else runs[0]


def _interleaved(child_args: list[list[str]], repeats: int, ref_n: int
                 ) -> tuple[list[dict | str], list[dict | str]]:
    """Run every case (its child's arguments) ``repeats`` times, in rounds over all the
    cases, so that a slow spell of a shared machine hits every case; the reference before
    the first round and after each. Returns each case's fastest run, and the reference's
    runs."""
    refs = [_reference(ref_n)]
    runs: list[list[dict | str]] = [[] for _ in child_args]
    for _ in range(repeats):
        for i, args in enumerate(child_args):
            runs[i].append(_run_child([__file__, *args]))
        refs.append(_reference(ref_n))
    return [_fastest(r) for r in runs], refs


def _runs_said(repeats: int) -> str:
    return "one run" if repeats == 1 else f"the fastest of {repeats} interleaved runs each"


def _fixed(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def _reference(requests: int) -> dict | str:
    return _run_child([str(Path(__file__).with_name("reference_mm1.py")),
                       "--requests", str(requests)])


def _best_reference(refs: list[dict | str], ref_n: int) -> float:
    """Print the reference runs (before and after the engine's) and return the faster
    one's requests per CPU second: the ratios use it, so they are conservative. Exits
    when both failed."""
    ok = [r for r in refs if isinstance(r, dict)]
    if not ok:
        sys.exit(f"the reference failed: {refs[0]}")
    ref = max(r["requests_per_cpu_s"] for r in ok)
    print(f"reference (SimPy M/M/1: a Store and one server process, {ref_n:,} requests): "
          + ", ".join(f"{r['requests_per_cpu_s']:,.0f}" for r in ok)
          + f" requests/CPU-s (before, {'after' if len(ok) == 2 else 'after each round'}); "
          f"ratios use {ref:,.0f}")
    return ref


# (label, slots, PCIe links, co-location slowdowns): from the model nearest the
# reference's (one server, no copies, no interference; batching and records remain) to the
# scenario's; each step adds one feature
LADDER = (("1 slot, no PCIe, no co-location", 1, False, False),
          ("1 slot, PCIe", 1, True, False),
          ("2 slots, no PCIe, no co-location", 2, False, False),
          ("2 slots, PCIe, no co-location", 2, True, False),
          ("2 slots, PCIe, co-location (the scenario)", 2, True, True))


def ladder(args: argparse.Namespace) -> None:
    """What each of the scenario's features costs, as a ratio to the reference measured in
    the same run: where the engine's time per request goes. At 1 GPU by default; with
    ``--gpus`` at each count too, each row then also against the same features at the
    first count (which feature's cost grows with the GPUs)."""
    policies = args.policies.split(",")
    gpu_counts = [int(g) for g in (args.gpus or "1").split(",")]
    ref_n = min(args.requests, args.reference_requests)
    cases = [(policy, step, g) for policy in policies for step in LADDER
             for g in gpu_counts]
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(Path(tmp))
        child_args = []
        for policy, (_, slots, pcie, inter), g in cases:
            extra = ["--child-slots", str(slots), "--child-gpus", str(g)]
            extra += [] if pcie else ["--child-no-pcie"]
            extra += [] if inter else ["--child-no-interference"]
            child_args.append(["--child", str(bundle), policy, "--requests",
                               str(args.requests), "--load", str(args.load), "--seed",
                               str(args.seed), *extra])
        rows, refs = _interleaved(child_args, args.repeats, ref_n)
    print(f"{args.requests:,} requests per run, max batch 8, offered load {args.load} per "
          f"GPU; {_runs_said(args.repeats)}, a shared machine")
    ref = _best_reference(refs, ref_n)
    first = gpu_counts[0]
    print(f"{'policy':<9} {'features':<42} {'GPUs':>5} {'req/CPU-s':>10} {'x ref':>6} "
          f"{'us/req':>7} {'x ' + str(first) + ' GPU':>8} {'events/req':>10} {'batches':>8}")
    cost: dict[tuple[str, str, int], float] = {}
    for (policy, (label, *_), g), r in zip(cases, rows, strict=True):
        if isinstance(r, str):
            print(f"{policy:<9} {label:<42} {g:>5} {r}")
            continue
        us = cost[(policy, label, g)] = 1e6 * r["cpu_s"] / r["requests"]
        base = cost.get((policy, label, first))
        print(f"{policy:<9} {label:<42} {g:>5} {r['requests_per_cpu_s']:>10,.0f} "
              f"{r['requests_per_cpu_s'] / ref:>6.2f} {us:>7.1f} "
              f"{us / base if base else float('nan'):>8.2f} "
              f"{r['events_per_request']:>10.2f} {r['batches_per_request']:>8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--policies", default="fifo,priority,strait")
    ap.add_argument("--gpus", default=None,
                    help="comma-separated GPU counts (default 1,64,1024; with --ladder 1)")
    ap.add_argument("--models", default="6",
                    help="comma-separated model counts (6: the scenario's own; more: "
                         "synthetic models added with solo times only)")
    ap.add_argument("--load", type=float, default=0.8, help="offered load per GPU")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1,
                    help="rounds over every case (interleaved); each case keeps its "
                         "fastest run, the reference its fastest too")
    ap.add_argument("--stream", action="store_true",
                    help="stream each run's results to a temporary folder (as --out)")
    ap.add_argument("--reference-requests", type=int, default=1_000_000,
                    help="requests of the reference run (at most --requests)")
    ap.add_argument("--ladder", action="store_true",
                    help="1 GPU: the scenario's features added one at a time (slots, "
                         "PCIe links, co-location), each as a ratio to the reference")
    ap.add_argument("--child", nargs=2, metavar=("BUNDLE", "POLICY"), help=argparse.SUPPRESS)
    ap.add_argument("--child-gpus", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--child-stream-to", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-slots", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--child-no-pcie", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-no-interference", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.requests, args.load,
                               args.seed, args.child_gpus, args.child_stream_to,
                               args.child_slots, not args.child_no_pcie,
                               not args.child_no_interference)))
        return
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    if args.ladder:
        ladder(args)
        return
    gpu_counts = [int(g) for g in (args.gpus or "1,64,1024").split(",")]
    model_counts = [int(m) for m in args.models.split(",")]
    policies = args.policies.split(",")
    cases = [(p, m, g) for p in policies for m in model_counts for g in gpu_counts]
    with tempfile.TemporaryDirectory() as tmp:
        bundles = {m: make_bundle(Path(tmp), m) for m in model_counts}
        ref_n = min(args.requests, args.reference_requests)
        rows, refs = _interleaved(
            [["--child", str(bundles[m]), policy, "--child-gpus", str(g),
              "--requests", str(args.requests), "--load", str(args.load),
              "--seed", str(args.seed)]
             + (["--child-stream-to", tmp] if args.stream else [])
             for policy, m, g in cases], args.repeats, ref_n)
    print(f"{args.requests:,} requests per run; {args.models} models, 2 slots per GPU, "
          f"max batch 8, offered load {args.load} per GPU (batch-1 solo work); "
          f"{_runs_said(args.repeats)}, a shared machine"
          + ("; results streamed to disk" if args.stream else ""))
    ref = _best_reference(refs, ref_n)
    print("ev/req: heap events per request (phase ends, re-rates, timers; arrivals are "
          "not events)")
    print("req/CPU-s and us/req: the event loop (with --stream: the whole run); setup "
          "(driver and truth model) and results (table, summary) in CPU seconds beside; "
          f"x {gpu_counts[0]} GPU and x {model_counts[0]} mod: per-request cost against "
          "the same policy's")
    print(f"{'policy':<9} {'models':>6} {'GPUs':>5} {'req/CPU-s':>10} {'x ref':>6} "
          f"{'us/req':>7} {'x ' + str(gpu_counts[0]) + ' GPU':>8} "
          f"{'x ' + str(model_counts[0]) + ' mod':>8} {'ev/req':>6} {'setup s':>8} "
          f"{'results s':>9} "
          f"{'wall s':>7} {'peak MiB':>9} {'busy':>5} {'HP viol':>8} {'LP viol':>8}")
    cost: dict[tuple[str, int, int], float] = {}
    verdicts: list[str] = []
    for (policy, m, g), r in zip(cases, rows, strict=True):
        if isinstance(r, str):
            print(f"{policy:<9} {m:>6} {g:>5} {r}")
            continue
        cost_us = cost[(policy, m, g)] = 1e6 * r["cpu_s"] / r["requests"]
        base_g = cost.get((policy, m, gpu_counts[0]))
        base_m = cost.get((policy, model_counts[0], g))
        flat_g = cost_us / base_g if base_g else float("nan")
        flat_m = cost_us / base_m if base_m else float("nan")
        x_ref = r["requests_per_cpu_s"] / ref
        print(f"{policy:<9} {m:>6} {g:>5} {r['requests_per_cpu_s']:>10,.0f} {x_ref:>6.2f} "
              f"{cost_us:>7.1f} {flat_g:>8.2f} {flat_m:>8.2f} "
              f"{_fixed(r.get('events_per_request')):>6} "
              f"{_fixed(r['setup_cpu_s']):>8} {_fixed(r['results_cpu_s']):>9} "
              f"{r['wall_s']:>7.1f} {r['peak_rss_mib']:>9.0f} {r['gpu_busy']:>5.2f} "
              f"{r['hp_violation']:>8.3f} {r['lp_violation']:>8.3f}")
        if g == 1 and m == 6 and policy in TARGET_REF:
            met = "met" if x_ref >= TARGET_REF[policy] else "NOT met"
            verdicts.append(f"{policy} at 1 GPU: {x_ref:.2f}x the reference "
                            f"(target >= {TARGET_REF[policy]}x): {met}")
        if g == gpu_counts[-1] and g != gpu_counts[0]:
            met = "met" if flat_g <= TARGET_FLAT else "NOT met"
            verdicts.append(f"{policy} at {g} GPUs ({m} models): {flat_g:.2f}x the "
                            f"per-request cost at {gpu_counts[0]} GPU(s) (target <= "
                            f"{TARGET_FLAT}x): {met}")
        if m == model_counts[-1] and m != model_counts[0]:
            met = "met" if flat_m <= TARGET_FLAT else "NOT met"
            verdicts.append(f"{policy} with {m} models ({g} GPUs): {flat_m:.2f}x the "
                            f"per-request cost with {model_counts[0]} (flat: <= "
                            f"{TARGET_FLAT}x, the GPUs' target): {met}")
    for v in verdicts:
        print("target: " + v)


if __name__ == "__main__":
    main()
