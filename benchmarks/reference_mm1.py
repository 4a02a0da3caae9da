"""The yardstick for the engine's speed: the leanest SimPy M/M/1 a user would write.

A ``simpy.Store`` as the queue, one source process that sleeps an exponential gap and puts
a request, one server process that gets a request and sleeps an exponential service time:
no batching, no PCIe, no co-location, no policy, no results table. Whatever the engine
costs above this is the price of what it models. bench_engine.py runs it in the same run
as the engine and reports every engine figure as a ratio to it, so the ratio survives a
busy machine better than either number alone.

    .venv/bin/python benchmarks/reference_mm1.py --requests 200000
"""

from __future__ import annotations

import argparse
import json
import random
import time

import simpy


def simulate_mm1(requests: int, load: float = 0.8, seed: int = 0) -> int:
    """Serve ``requests`` requests at utilisation ``load`` (service rate 1); return the
    number served (so the caller can check it ran to the end)."""
    env = simpy.Environment()
    queue = simpy.Store(env)
    rng = random.Random(seed)
    served = 0

    def source():
        for _ in range(requests):
            yield env.timeout(rng.expovariate(load))
            yield queue.put(env.now)

    def server():
        nonlocal served
        while served < requests:
            yield queue.get()
            yield env.timeout(rng.expovariate(1.0))
            served += 1

    env.process(source())
    env.run(until=env.process(server()))
    return served


def measure(requests: int, load: float = 0.8, seed: int = 0) -> dict:
    """Requests per CPU second (and per wall second) of :func:`simulate_mm1`."""
    t0, c0 = time.perf_counter(), time.process_time()
    served = simulate_mm1(requests, load, seed)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert served == requests, (served, requests)
    return {"policy": "reference", "requests": served, "wall_s": wall, "cpu_s": cpu,
            "requests_per_s": served / wall, "requests_per_cpu_s": served / cpu}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(json.dumps(measure(args.requests, seed=args.seed)))
