"""What the clock's event heap adds to the per-request cost as the cluster grows.

At 1,024 GPUs the engine's heap holds about a thousand entries, against a handful at one
GPU, and every push and pop compares about log2(n) entries: part of why a request costs
more on a large cluster (issue 15's flatness target). This separates that part from the
rest (more co-location, more state per GPU, other memory effects):

- ``--pad N,...``: the one-GPU scenario of bench_engine.py with N entries added to the
  heap that fall due only after the run (so every push and pop walks as deep as at many
  GPUs and nothing else changes); CPU microseconds per request of the event loop, the
  fastest of ``--repeats`` interleaved runs, each pad against no pad;
- ``--census-gpus G,...``: at G GPUs, the heap's size sampled every 1,000 batches, and how
  much of it is *overtaken*: entries a later re-rate made stale (the fluid unit pushes a
  new end when a co-runner arrives and leaves the old one, which is popped and ignored).

    .venv/bin/python benchmarks/heap_depth.py --pad 0,1100 --repeats 3
    .venv/bin/python benchmarks/heap_depth.py --census-gpus 1,64,1024 --pad ''
"""

from __future__ import annotations

import argparse
import heapq
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import make_bundle  # noqa: E402 (the same scenario as bench_engine)


def make_driver(bundle: Path, gpus: int, requests: int, policy: str = "fifo",
                load: float = 0.8, seed: int = 0):  # type: ignore[no-untyped-def]
    """bench_engine's scenario: six models, 2 slots, max batch 8, load per GPU."""
    from strait_sim.engine.simulator import SimConfig, make_sim_driver
    from strait_sim.policies.registry import make_policy
    from strait_sim.profile_bundle import read_bundle_dir
    from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

    profile = read_bundle_dir(bundle)
    models = profile.model_names
    mean_work_s = sum(profile.solo_ms(m, 1) for m in models) / len(models) / 1e3
    rate = load * gpus / mean_work_s
    wl = BasicPoissonWorkload(models, rate=rate, duration_s=1.2 * requests / rate,
                              hp_fraction=0.2, slo=5.0, max_requests=requests)
    return make_sim_driver(profile, wl, make_policy(policy),
                           SimConfig(gpus=gpus, slots=2, max_batch=8, seed=seed))


def padded_run(bundle: Path, requests: int, pad: int) -> float:
    """CPU microseconds per request of the event loop at 1 GPU, with ``pad`` entries due
    after the run in the heap."""
    driver = make_driver(bundle, 1, requests)
    driver.start()
    clock = driver.clock
    after = 1e12  # later than any event of the run: popped only once it is over
    for i in range(pad):
        heapq.heappush(clock._queue, (after + i, 1, next(clock._eid), (_nothing, None)))
    c0 = time.process_time()
    clock.run_driver(driver.arrivals)
    return (time.process_time() - c0) / requests * 1e6


def _nothing(_value: object) -> None:
    return None


def census(bundle: Path, gpus: int, requests: int) -> tuple[float, float]:
    """Mean heap size and mean share of overtaken entries, sampled every 1,000 batches."""
    driver = make_driver(bundle, gpus, requests)
    queue = driver.clock._queue
    sizes: list[int] = []
    stale: list[float] = []
    done = driver.batch_done

    def sampled(batch, co_runs=()):  # type: ignore[no-untyped-def]
        if batch._batch_id % 1000 == 999:
            old = sum(1 for e in queue if e[3].__class__ is tuple
                      and e[3][1] != e[3][0].__self__.version)
            sizes.append(len(queue))
            stale.append(old / len(queue) if queue else 0.0)
        done(batch, co_runs)

    driver.batch_done = sampled  # the device calls it through the driver: this one first
    driver.run()
    return sum(sizes) / len(sizes), sum(stale) / len(stale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pad", default="0,1100", help="heap entries added at 1 GPU")
    parser.add_argument("--census-gpus", default="", help="GPU counts to sample the heap at")
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pads = [int(x) for x in args.pad.split(",") if x.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(Path(tmp))
        if pads:
            best = {p: float("inf") for p in pads}
            for _ in range(args.repeats):  # rounds over every pad: a slow spell hits all
                for p in pads:
                    best[p] = min(best[p], padded_run(bundle, args.requests, p))
            print(f"fifo, 1 GPU, {args.requests:,} requests, fastest of {args.repeats}:")
            print(f"{'pad':>6} {'us/req':>8} {'x pad ' + str(pads[0]):>9}")
            for p in pads:
                print(f"{p:>6} {best[p]:>8.2f} {best[p] / best[pads[0]]:>9.2f}")
        for g in [int(x) for x in args.census_gpus.split(",") if x.strip()]:
            size, share = census(bundle, g, args.requests)
            print(f"{g:>5} GPUs: heap {size:,.0f} entries on average, {share:.0%} overtaken")


if __name__ == "__main__":
    main()
