"""One simulated run from its parts to a :class:`RunResult`: the layer the CLI, ``compare``
and sweeps share, so that a run means the same thing wherever it is started.

With ``out`` the results are streamed (issue 15): requests.parquet is written row group
by row group while the run goes on (rows are final once every lower id has ended) and the
summary is computed from the file, so memory holds only the requests in flight. The file
has the same bytes as the in-memory path writes, and the summary the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from strait_sim import __version__
from strait_sim.atomic import atomic_dir
from strait_sim.engine.records import CHUNK
from strait_sim.engine.simulator import SimConfig, SimOutcome, make_sim_driver
from strait_sim.metrics import summarize
from strait_sim.metrics_stream import IN_MEMORY_ROWS, summarize_file
from strait_sim.policies.base import Policy
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.results import RequestsParquetStream, RunResult, summary_text
from strait_sim.workloads.base import Workload


def run_simulation(profile: ProfileBundle, workload: Workload, policy: Policy,
                   config: SimConfig, *,
                   progress: Callable[[int, float], None] | None = None,
                   out: Path | str | None = None, row_group: int = CHUNK) -> RunResult:
    """Simulate and summarise. The summary records everything needed to repeat the run.

    With ``out``, the results folder (requests.parquet, summary.json) is written while
    the run goes on and appears whole at the end; ``requests`` of the result is then the
    table read back, or None above ``IN_MEMORY_ROWS`` rows. ``row_group`` (rows per
    row group of the streamed file) is for tests: the default gives the in-memory bytes."""
    if out is not None:
        return _run_streamed(profile, workload, policy, config, progress, Path(out),
                             row_group)
    t0 = time.perf_counter()
    driver = make_sim_driver(profile, workload, policy, config, progress)
    outcome = driver.run()
    wall = time.perf_counter() - t0
    df = outcome.records.to_frame(outcome.models, release=True)
    summary = build_summary(df, outcome, profile, workload, policy, config, wall,
                            policies=ran_policies(driver, policy))
    _add_truth(summary, driver)
    return RunResult(df, summary, timeline=outcome.timeline)


def _add_truth(summary: dict, driver: object) -> None:
    """summary["truth"]: how much of the run's compute leaned on slowdowns the profile
    did not measure (read from the run's truth model once the run has ended; one truth
    model serves every node of a cluster)."""
    nodes = getattr(driver, "nodes", None)
    first = nodes[0] if isinstance(nodes, list) and nodes else driver
    truth = getattr(getattr(first, "device", None), "truth", None)
    block = getattr(truth, "run_extrapolation", None)
    if block is not None:
        summary["truth"] = block()


def ran_policies(driver: object, policy: Policy) -> list[Policy]:
    """The policy objects that made the run's decisions: a cluster's nodes each bind
    their own copy (node 0 the object given), so counters must be read from them all."""
    nodes = getattr(driver, "nodes", None)
    return [node.policy for node in nodes] if isinstance(nodes, list) and nodes \
        else [policy]


def policy_stats(policies: Sequence[Policy]) -> dict[str, int | float]:
    """summary["policy_stats"]: each policy's ``stats()`` counters, summed over the
    policies that ran (a cluster's nodes), in the order the first one gives them."""
    total: dict[str, int | float] = {}
    for pol in policies:
        for key, value in pol.stats().items():
            total[key] = total.get(key, 0) + value
    return total


def _run_streamed(profile: ProfileBundle, workload: Workload, policy: Policy,
                  config: SimConfig, progress: Callable[[int, float], None] | None,
                  out: Path, row_group: int) -> RunResult:
    with atomic_dir(out, "run") as tmp:
        path = tmp / "requests.parquet"
        sink = RequestsParquetStream(path)
        t0 = time.perf_counter()
        driver = make_sim_driver(profile, workload, policy, config, progress)
        driver.records.stream(sink, driver.models, row_group=row_group)
        outcome = driver.run()
        outcome.records.finish_stream()
        sink.close()
        wall = time.perf_counter() - t0
        span = measured_span_s(outcome, workload)
        block = summarize_file(path, duration_s=span, busy_fraction=_busy(outcome, span))
        summary = build_summary(None, outcome, profile, workload, policy, config, wall,
                                requests_summary=block,
                                policies=ran_policies(driver, policy))
        _add_truth(summary, driver)
        (tmp / "summary.json").write_text(summary_text(summary))
    n = summary["requests"]
    df = pd.read_parquet(out / "requests.parquet") if n <= IN_MEMORY_ROWS else None
    return RunResult(df, summary, timeline=outcome.timeline, folder=out)


def measured_span_s(outcome: SimOutcome, workload: Workload) -> float:
    """The run's measurement window, from the workload's time origin to the run's end:
    the ``duration_s`` that goodput and the busy fraction are taken over. A trace whose
    first request is at 100 s would otherwise count 100 idle seconds in both. Never
    negative: a run that replays nothing (a ``--rate-scale`` below 1 that keeps no
    request) ends at 0, before the origin."""
    return max(0.0, outcome.end_s - workload.time_origin_s())


def _busy(outcome: SimOutcome, span: float) -> float | None:
    return sum(outcome.busy_s) / (len(outcome.busy_s) * span) if span > 0 else None


def build_summary(df: pd.DataFrame | None, outcome: SimOutcome, profile: ProfileBundle,
                  workload: Workload, policy: Policy, config: SimConfig, wall_s: float, *,
                  requests_summary: dict | None = None,
                  policies: Sequence[Policy] | None = None) -> dict:
    """summary.json: the request metrics (of ``df``, or ``requests_summary`` when they
    were computed from a streamed file) and what is needed to repeat the run.
    ``policies``: the objects that ran, when not only ``policy`` (a cluster's nodes)."""
    span = measured_span_s(outcome, workload)
    summary = requests_summary if requests_summary is not None else \
        summarize(df, duration_s=span, busy_fraction=_busy(outcome, span))
    origin = workload.time_origin_s()
    if origin != 0.0:  # recorded only where it is not 0: other summaries keep their bytes
        summary["window_start_s"] = origin
    n = summary["requests"]
    stats = policy_stats(policies or [policy])  # absent, not {}, where none are kept
    summary.update({
        "mode": "sim",
        "policy": policy.name,
        "policy_params": policy.params(),
        **({"policy_stats": stats} if stats else {}),
        "seed": config.seed,
        "profile": {"name": profile.name, "device": profile.device_name,
                    "kind": profile.device_kind, "content_hash": profile.content_hash},
        "workload": workload.describe(),
        "system": {"gpus": config.gpus, "slots": config.slots, "max_batch": config.max_batch,
                   "interference": config.interference, "pcie": config.pcie,
                   **({"nodes": config.nodes, "router": config.router,
                       "requests_per_node": outcome.extra.get("requests_per_node")}
                      if config.nodes > 1 else {})},
        "engine": {"end_s": outcome.end_s, "batches": outcome.batches,
                   "preemptions": outcome.preemptions, "lost_work_s": outcome.lost_work_s,
                   "wall_s": wall_s,
                   "requests_per_wall_s": n / wall_s if wall_s > 0 else None},
        "version": __version__,
    })
    return summary
