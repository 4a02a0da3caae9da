"""Engine speed of two git revisions, side by side: the ratio survives a noisy machine.

Both revisions are checked out into temporary worktrees and run the engine benchmark's
scenario (benchmarks/bench_engine.py: six models, 2 slots, load 0.8) on the same synthetic
bundle, alternating A, B, A, B, ... in fresh child processes, so that a busy spell on a
shared machine hits both. The best of the repeats (requests per CPU second) is reported
for each, with the ratio B/A, and whether the two gave the same results.

    .venv/bin/python benchmarks/compare_revisions.py HEAD~1 HEAD
    .venv/bin/python benchmarks/compare_revisions.py main WORKTREE --policies fifo,strait
    .venv/bin/python benchmarks/compare_revisions.py HEAD~3 HEAD --requests 200000 --repeats 5
    .venv/bin/python benchmarks/compare_revisions.py main WORKTREE --gpus 1024
    .venv/bin/python benchmarks/compare_revisions.py main WORKTREE --models 100

``WORKTREE`` means the working tree as it is, uncommitted edits included.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Run in a child with the revision's tree first on sys.path (revision_tree.use_tree, from
# this checkout's benchmarks folder: older revisions lack it), then the revision's own
# bench_engine.
CHILD = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[6])
from revision_tree import use_tree
root = Path(sys.argv[1])
use_tree(root)
sys.path.insert(0, str(root / "benchmarks"))
import bench_engine, inspect
args = [sys.argv[2], sys.argv[3], int(sys.argv[4]), 0.8, 0]
if len(inspect.signature(bench_engine.child).parameters) > 5:  # revisions before --gpus
    args.append(int(sys.argv[5]))                               # ran 1 GPU only
elif int(sys.argv[5]) != 1:
    sys.exit("this revision's bench_engine.child takes no GPU count")
print(json.dumps(bench_engine.child(*args)))
"""


def checkout(rev: str, into: Path) -> Path:
    """A worktree of ``rev`` under ``into`` (or the live tree for WORKTREE)."""
    if rev == "WORKTREE":
        return REPO
    path = into / rev.replace("/", "_").replace("~", "-").replace("^", "-")
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(path),
                    rev], check=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="baseline revision (or WORKTREE)")
    ap.add_argument("b", help="revision to compare (or WORKTREE)")
    ap.add_argument("--policies", default="fifo,priority")
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gpus", type=int, default=1, help="GPUs (load 0.8 per GPU)")
    ap.add_argument("--models", type=int, default=6,
                    help="models in the bundle (above 6: synthetic models added with solo "
                         "times, as bench_engine --models does; both revisions run the "
                         "same bundle, built by this checkout)")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_engine

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        trees: dict[str, Path] = {}
        try:
            for rev in (args.a, args.b):  # one at a time: a failed second still cleans the first
                trees[rev] = checkout(rev, tmp_path)
            bundle = str(bench_engine.make_bundle(tmp_path, args.models))
            print(f"{args.requests:,} requests per run, {args.gpus} GPU(s), "
                  f"{args.models} models, best of "
                  f"{args.repeats}, requests per CPU second")
            print(f"{'policy':<10} {args.a:>14} {args.b:>14}  ratio  same results")
            for policy in args.policies.split(","):
                best: dict[str, dict] = {}
                for _ in range(args.repeats):
                    for rev, tree in trees.items():
                        out = subprocess.run(
                            [sys.executable, "-c", CHILD, str(tree), bundle, policy,
                             str(args.requests), str(args.gpus),
                             str(REPO / "benchmarks")], check=True,
                            capture_output=True, text=True)
                        r = json.loads(out.stdout.strip().splitlines()[-1])
                        if rev not in best or r["requests_per_cpu_s"] > \
                                best[rev]["requests_per_cpu_s"]:
                            best[rev] = r
                ra, rb = best[args.a], best[args.b]
                same = all(ra[k] == rb[k] for k in ("gpu_busy", "hp_violation",
                                                    "lp_violation"))
                print(f"{policy:<10} {ra['requests_per_cpu_s']:>14,.0f} "
                      f"{rb['requests_per_cpu_s']:>14,.0f}  "
                      f"{rb['requests_per_cpu_s'] / ra['requests_per_cpu_s']:5.2f}  "
                      f"{'yes' if same else 'no'}")
        finally:
            for tree in trees.values():
                if tree != REPO:
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                    str(tree)], check=False)


if __name__ == "__main__":
    main()
