"""One simulated run from its parts to a :class:`RunResult`: the layer the CLI, ``compare``
and sweeps share, so that a run means the same thing wherever it is started."""

from __future__ import annotations

import time
from collections.abc import Callable

from strait_sim import __version__
from strait_sim.engine.simulator import SimConfig, SimOutcome, simulate
from strait_sim.metrics import summarize
from strait_sim.policies.base import Policy
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.results import RunResult
from strait_sim.workloads.base import Workload


def run_simulation(profile: ProfileBundle, workload: Workload, policy: Policy,
                   config: SimConfig, *,
                   progress: Callable[[int, float], None] | None = None) -> RunResult:
    """Simulate and summarise. The summary records everything needed to repeat the run."""
    t0 = time.perf_counter()
    outcome = simulate(profile, workload, policy, config, progress=progress)
    wall = time.perf_counter() - t0
    df = outcome.records.to_frame(outcome.models, release=True)
    return RunResult(df, build_summary(df, outcome, profile, workload, policy, config, wall),
                     timeline=outcome.timeline)


def build_summary(df, outcome: SimOutcome, profile: ProfileBundle, workload: Workload,
                  policy: Policy, config: SimConfig, wall_s: float) -> dict:
    span = outcome.end_s
    busy = sum(outcome.busy_s) / (len(outcome.busy_s) * span) if span > 0 else None
    summary = summarize(df, duration_s=span, busy_fraction=busy)
    summary.update({
        "mode": "sim",
        "policy": policy.name,
        "policy_params": policy.params(),
        "seed": config.seed,
        "profile": {"name": profile.name, "device": profile.device_name,
                    "kind": profile.device_kind, "content_hash": profile.content_hash},
        "workload": workload.describe(),
        "system": {"gpus": config.gpus, "slots": config.slots, "max_batch": config.max_batch,
                   "interference": config.interference, "pcie": config.pcie},
        "engine": {"end_s": span, "batches": outcome.batches,
                   "preemptions": outcome.preemptions, "lost_work_s": outcome.lost_work_s,
                   "wall_s": wall_s,
                   "requests_per_wall_s": len(df) / wall_s if wall_s > 0 else None},
        "version": __version__,
    })
    return summary
