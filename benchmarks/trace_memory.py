"""Peak memory of replaying a rate-scaled trace: its chunks generated, nothing simulated.

Iterates the chunks of a trace workload (default: the shipped Azure conversation trace
x1,000, 19.4M requests) and prints the requests, the CPU seconds, the process's peak
resident memory and a digest of every chunk's columns (the same digest means the same
arrivals, bit for bit). ``--tree PATH`` runs another checkout's code (e.g. a worktree of
an older commit), to compare two revisions' memory on the same input:

    .venv/bin/python benchmarks/trace_memory.py
    git worktree add --detach /tmp/old 191171a
    .venv/bin/python benchmarks/trace_memory.py --tree /tmp/old
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import time
from pathlib import Path

from revision_tree import use_tree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="azure-conv")
    ap.add_argument("--rate-scale", type=float, default=1000.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tree", type=Path, default=None, help="run this checkout's code")
    args = ap.parse_args()
    if args.tree is not None:
        use_tree(args.tree.resolve())
    from strait_sim.cli.workload_options import workload_from_options
    from strait_sim.profile_bundle import read_bundle_dir
    from strait_sim.profile_registry import resolve_profile

    bundle = read_bundle_dir(resolve_profile("cpu-epyc2-fp32")[0])
    wl = workload_from_options({"workload": args.workload, "rate_scale": args.rate_scale},
                               bundle)
    c0 = time.process_time()
    digest = hashlib.sha256()
    n = chunks = 0
    for chunk in wl.chunks(bundle, args.seed):
        for name in ("arrival_s", "model", "priority", "deadline_s", "items"):
            digest.update(getattr(chunk, name).tobytes())
        n += len(chunk)
        chunks += 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.workload} x{args.rate_scale:g}: {n:,} requests in {chunks} chunks, "
          f"{time.process_time() - c0:.1f} CPU s, peak RSS {peak:,.0f} MiB, "
          f"digest {digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
