"""Speed-up of a sweep on the local process pool: the same grid with 1 and 2 workers.

Usage::

    .venv/bin/python benchmarks/bench_sweep.py [--points 40] [--duration 60] [--workers 2]

The grid is ``points`` specs on the bundled ``synthetic-tiny`` profile (policies fifo and
priority, several rates, seeds). Both runs write their point folders (summary, spec and
per-request Parquet) into fresh temporary sweep folders, as a real sweep does, and are
timed side by side in this one process. The 1-worker run executes in-process (no spawn
cost); the N-worker run pays for starting its spawned workers, as users do. Target: at
least 1.7x with 2 workers on 2 free cores. The load average, and a control (a pure-Python loop
in 1 vs N processes, i.e. the parallel headroom the machine offers at that moment), are
printed before and after: on a shared machine other processes take cores from the run
and lower the figure. CPU seconds (this process plus its workers) are printed too: they
show the pool's own overhead whatever the machine's load.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import tempfile
import time
from pathlib import Path

from strait_sim.sweep.executors import run_points, without_timing
from strait_sim.sweep.spec import resolve_spec

TARGET = 1.7


def grid(points: int, duration: float) -> list[dict]:
    combos = itertools.product(range(1000), ("fifo", "priority"), (300.0, 400.0, 500.0, 600.0))
    return [resolve_spec({"policy": policy, "profile": "synthetic-tiny", "rate": rate,
                          "duration": duration, "seed": seed})
            for (seed, policy, rate) in itertools.islice(combos, points)]


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def control_speedup(workers: int, jobs: int = 8, n: int = 2_000_000) -> float:
    """The machine's parallel headroom right now: a pure-Python loop, 1 vs N processes.

    Not part of the figure; printed beside it so that a low speed-up on a busy machine can
    be told apart from overhead in the sweep code.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    for _ in range(jobs):
        _spin(n)
    one = time.perf_counter() - t0
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_spin, [1000] * workers))  # start the workers outside the timing
        t0 = time.perf_counter()
        list(pool.map(_spin, [n] * jobs))
        many = time.perf_counter() - t0
    return one / many


def cpu_seconds() -> float:
    """CPU time of this process and of its finished (reaped) children, user + system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(specs: list[dict], workers: int) -> tuple[float, float, list]:
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        c0, t0 = cpu_seconds(), time.perf_counter()
        outcomes = run_points(specs, workers=workers, out_dir=Path(tmp), progress=False)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise SystemExit(f"{len(failed)} point(s) failed, first: {failed[0].error}")
    return wall, cpu, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=40)
    parser.add_argument("--duration", type=float, default=60.0,
                        help="simulated seconds of arrivals per point")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    specs = grid(args.points, args.duration)
    print(f"control (pure-Python loop, {args.workers} vs 1 process, no start-up cost): "
          f"{control_speedup(args.workers):.2f}x")
    print(f"grid: {len(specs)} points, {args.duration:g} s of arrivals each, "
          f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    one, cpu1, out1 = timed(specs, 1)
    print(f"1 worker : {one:7.2f} s wall, {cpu1:6.2f} s CPU  ({len(specs) / one:.2f} points/s)")
    many, cpun, outn = timed(specs, args.workers)
    print(f"{args.workers} workers: {many:7.2f} s wall, {cpun:6.2f} s CPU  "
          f"({len(specs) / many:.2f} points/s; CPU includes the workers' start-up)")
    same = all(without_timing(a.summary) == without_timing(b.summary)
               for a, b in zip(out1, outn, strict=True))
    requests = sum(o.summary["requests"] for o in out1)
    speedup = one / many
    print(f"requests simulated per run: {requests}; identical summaries: {same}")
    print(f"load average after: {os.getloadavg()[0]:.2f}; control again: "
          f"{control_speedup(args.workers):.2f}x")
    print(f"speed-up {args.workers} vs 1 worker: {speedup:.2f}x "
          f"(target >= {TARGET}x on {args.workers} free cores: "
          f"{'met' if speedup >= TARGET else 'NOT met'})")


if __name__ == "__main__":
    main()
