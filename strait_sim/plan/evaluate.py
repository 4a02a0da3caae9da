"""Scoring configurations: simulate each on every seed (through the sweep machinery) and
judge the per-seed values against the targets.

Runs go through :func:`strait_sim.sweep.executors.run_points`, so they run in-process, on a
local process pool or on Dask, and with an output folder each (configuration, seed) is a
hashed point under ``OUT/points/<key>/``: a plan that is interrupted and started again
reuses every simulation it had finished.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strait_sim.errors import UserError
from strait_sim.plan.confidence import MEETS, Bound, bound, combine
from strait_sim.plan.space import Config, CostFunction
from strait_sim.plan.targets import Target
from strait_sim.requests import PRIORITY_NAMES
from strait_sim.workloads.spec import TRACE_KINDS


@dataclass
class PointResult:
    """One configuration judged over its seeds."""

    config: Config
    cost: float
    seeds: tuple[int, ...]
    bounds: dict[Target, Bound]
    verdict: str
    on_time: dict[str, float]  # mean over seeds of each class's on-time share
    p99_ms: dict[str, float]  # mean over seeds of each class's p99 latency (inf: none)
    keys: tuple[str, ...] = ()

    @property
    def meets(self) -> bool:
        return self.verdict == MEETS


@dataclass
class Evaluator:
    """Simulates configurations for a fixed profile, workload and system switches."""

    profile: str
    workload: dict[str, Any]
    targets: list[Target]
    cost: CostFunction
    confidence: float = 0.95
    interference: bool = True
    pcie: bool = True
    workers: int = 1
    executor: str = "local"
    scheduler: str | None = None
    out: Path | None = None
    force: bool = False
    allow_large: bool = False  # above the work limit: plan() checked it once, up front
    simulations_run: int = 0
    simulations_reused: int = 0
    _cache: dict[tuple[Config, tuple[int, ...]], PointResult] = field(default_factory=dict)

    def spec(self, config: Config, seed: int) -> dict:
        from strait_sim.sweep.spec import resolve_spec

        fam = config.family
        return resolve_spec({"policy": fam.policy, "policy_params": fam.params_dict,
                             "profile": self.profile, "workload": dict(self.workload),
                             "gpus": config.gpus, "slots": fam.slots,
                             "max_batch": fam.max_batch, "seed": seed,
                             "interference": self.interference, "pcie": self.pcie},
                            where="plan")

    def evaluate(self, configs: list[Config], seeds: list[int]) -> list[PointResult]:
        """Judge every config on every seed (one batch of runs); cached per (config, seeds)."""
        from strait_sim.sweep.executors import run_points

        seeds_t = tuple(seeds)
        todo = [c for c in dict.fromkeys(configs) if (c, seeds_t) not in self._cache]
        if todo:
            specs = [self.spec(c, s) for c in todo for s in seeds_t]
            outcomes = run_points(specs, workers=self.workers, executor=self.executor,
                                  scheduler=self.scheduler, out_dir=self.out,
                                  force=self.force, progress=False, keep_requests=False,
                                  allow_large=self.allow_large)
            failed = [o for o in outcomes if not o.ok]
            if failed:
                o = failed[0]
                first = (o.error or "no summary").strip().splitlines()[-1]
                raise UserError(f"{len(failed)} of {len(specs)} simulation(s) failed; first: "
                                f"policy {o.spec['policy']}, {o.spec['gpus']} GPU(s), seed "
                                f"{o.spec['seed']}: {first}")
            self.simulations_reused += sum(o.skipped for o in outcomes)
            self.simulations_run += sum(not o.skipped for o in outcomes)
            n = len(seeds_t)
            for i, config in enumerate(todo):
                mine = outcomes[i * n:(i + 1) * n]
                self._cache[(config, seeds_t)] = self.judge(
                    config, seeds_t, [o.summary for o in mine], tuple(o.key for o in mine))
        return [self._cache[(c, seeds_t)] for c in configs]

    def judge(self, config: Config, seeds: tuple[int, ...], summaries: list[dict],
              keys: tuple[str, ...] = ()) -> PointResult:
        """A :class:`PointResult` from the runs' summaries."""
        bounds = {t: bound([t.value(s) for s in summaries], t.bound, t.higher_is_better,
                           self.confidence) for t in self.targets}
        on_time = {c: _mean([Target(c, "on_time", 1.0).value(s) for s in summaries])
                   for c in PRIORITY_NAMES}
        p99 = {c: _mean([Target(c, "p99", 1.0).value(s) for s in summaries])
               for c in PRIORITY_NAMES}
        return PointResult(config, float(self.cost(config)), seeds, bounds,
                           combine([b.verdict for b in bounds.values()]), on_time, p99, keys)


def _mean(values: list[float]) -> float:
    return math.inf if any(math.isinf(v) for v in values) else sum(values) / len(values)


def fixed_workload(options: dict[str, Any], profile: str, *, max_batch: int) -> dict[str, Any]:
    """The workload options with the offered traffic pinned, whatever the GPU count.

    ``--load`` means "a share of the GPUs' capacity", which would change with the GPU count
    being searched; the planner reads it as work in units of *one* GPU (``--load 6``: six
    GPUs' worth of solo work) and replaces it by the rate (arrival processes) or time scale
    (traces) that it gives on one GPU, so every configuration sees the same requests.
    """
    from strait_sim.cli.workload_options import workload_from_options
    from strait_sim.sweep.points import load_profile

    wl = {k: v for k, v in options.items() if v is not None}
    bundle = load_profile(profile)
    kind = wl.get("workload") or ("trace" if wl.get("trace") else "poisson")
    if kind not in (*TRACE_KINDS, "closed") and "rate" not in wl and "load" not in wl:
        raise UserError("plan needs the offered traffic fixed: give --rate R (requests/s) "
                        "or --load L (L GPUs' worth of solo work)")
    if "load" in wl:
        built = workload_from_options(dict(wl), bundle, gpus=1, max_batch=max_batch)
        desc = built.describe()
        wl.pop("load")
        wl.pop("capacity_batch", None)
        if kind in TRACE_KINDS:
            wl["time_scale"] = float(desc["time_scale"])
        else:
            wl["rate"] = float(desc["arrivals"]["rate"])
    workload_from_options(dict(wl), bundle, gpus=1, max_batch=max_batch)  # one-line errors
    return wl


EvaluateFn = Callable[[list[Config], list[int]], list[PointResult]]


def offered_gpus(workload: dict[str, Any], profile: str, *, seed: int = 0,
                 max_requests: int = 2_000_000) -> float | None:
    """Offered solo work of the fixed workload in GPUs (GPU-seconds per second), measured
    on the stream of ``seed``; None for a closed loop or an empty stream.

    Only a start point for the search: batching and co-location can make a GPU do more
    than its solo work, deadlines can need more headroom, so the answer may lie on either
    side of it (the search gallops both ways)."""
    from strait_sim.cli.workload_options import workload_from_options
    from strait_sim.sweep.points import load_profile
    from strait_sim.workloads.load import chunk_work_s

    wl = dict(workload)
    if (wl.get("workload") or "") == "closed":
        return None
    bundle = load_profile(profile)
    built = workload_from_options(wl, bundle, gpus=1, max_batch=1)
    work, first, last, n = 0.0, None, 0.0, 0
    for chunk in built.chunks(bundle, seed):
        if not len(chunk):
            continue
        work += chunk_work_s(bundle, chunk)
        first = float(chunk.arrival_s[0]) if first is None else first
        last = float(chunk.arrival_s[-1])
        n += len(chunk)
        if n >= max_requests:
            break
    if first is None or last <= first:
        return None
    return work / (last - first)
