"""``plan()``: the Python entry point of ``strait-sim plan``.

Fixes the workload's traffic, checks the cost, runs the search, then (optionally) checks
each answer on fresh seeds: the answer again, and the same family with one GPU fewer,
which should miss the targets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strait_sim.errors import UserError
from strait_sim.plan.evaluate import Evaluator, PointResult, fixed_workload, offered_gpus
from strait_sim.plan.front import pareto_front
from strait_sim.plan.search import SearchResult, grid_search, search
from strait_sim.plan.space import Config, CostFunction, SearchSpace, check_cost, gpu_count_cost
from strait_sim.plan.targets import Target


@dataclass
class Verification:
    """An answer and the same family one GPU lower, on seeds the search did not use."""

    group: str
    answer: PointResult
    one_fewer: PointResult | None  # None when the answer is a single GPU


@dataclass
class PlanResult:
    profile: str
    workload: dict[str, Any]
    targets: list[Target]
    space: SearchSpace
    seeds: list[int]
    confidence: float
    search: SearchResult
    front: list[PointResult]
    simulations_run: int
    simulations_reused: int
    verification: list[Verification] = field(default_factory=list)
    verify_seeds: list[int] = field(default_factory=list)

    @property
    def search_simulations(self) -> int:
        """Simulations the search needed (distinct configurations x seeds)."""
        return len({p.config for p in self.search.points}) * len(self.seeds)

    @property
    def grid_simulations(self) -> int:
        """Simulations the full grid would need (every configuration x seeds)."""
        return self.space.size() * len(self.seeds)


def runnable_families(space: SearchSpace, log: Callable[[str], None] | None
                      ) -> SearchSpace:
    """The space without the families a policy refuses for their slot count (orion's
    ``hp_slots`` above the slots), each said in the log; an unknown policy or a bad
    parameter is one line, now, and so is a space left empty.

    Why: a plan crosses parameter values with slot counts (``--param orion.hp_slots=1,2
    --slots 1,2``); the combinations that cannot exist should not refuse the whole search.
    """
    from dataclasses import replace

    from strait_sim.policies.registry import make_policy

    kept, refused = [], []
    for family in space.families:
        policy = make_policy(family.policy, **family.params_dict)
        try:
            policy.check_system(slots=family.slots)
        except UserError as exc:
            refused.append((family, exc))
            continue
        kept.append(family)
    if not kept:
        raise refused[0][1]  # every family refused: the first one's line, alone
    for family, exc in refused if log is not None else ():
        log(f"skipped {family.label()}: {exc}")
    return space if len(kept) == len(space.families) else replace(space, families=tuple(kept))


def plan(profile: str, workload: dict[str, Any], targets: list[Target], space: SearchSpace,
         *, cost: CostFunction = gpu_count_cost, seeds: int = 5, first_seed: int = 0,
         confidence: float = 0.95, interference: bool = True, pcie: bool = True,
         workers: int = 1, executor: str = "local", scheduler: str | None = None,
         out: Path | None = None, force: bool = False, verify_seeds: int = 0,
         exhaustive: bool = False, log: Callable[[str], None] | None = None,
         allow_large: bool = False) -> PlanResult:
    """Find the cheapest configuration of ``space`` per policy that meets ``targets``.

    ``workload`` holds workload options as the CLI flags name them (``rate``, ``load`` in
    GPUs of solo work, ``workload``, ``window``, ...). A configuration meets the targets
    when each target's one-sided ``confidence`` bound over ``seeds`` seeds is on the right
    side (:mod:`strait_sim.plan.confidence`). With ``out``, every simulation is kept as a
    hashed point there and reused when the plan runs again. ``exhaustive`` evaluates
    the whole grid instead of searching (to check the search's answer). Every
    configuration sees the same requests, so the work limit (work_limit.py) is checked once,
    before any simulation; ``allow_large`` lifts it.
    """
    from strait_sim.profile_registry import default_profile_name

    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    if verify_seeds < 0:
        raise UserError(f"--verify-seeds must be at least 0, got {verify_seeds}")
    if not 0.5 <= confidence < 1.0:
        raise UserError(f"--confidence must be in [0.5, 1), got {confidence:g}")
    if not targets:
        raise UserError("no target given")
    from strait_sim.output_folder import check_output_folder, open_resumable_folder
    from strait_sim.sweep.executors import check_run_options

    check_run_options(workers, executor, scheduler)
    if out is not None:
        check_output_folder(out, "plan", resume=True)
    profile = profile or default_profile_name()
    space = runnable_families(space, log)
    check_cost(space, cost)
    top_batch = max(f.max_batch for f in space.families)
    wl = fixed_workload(workload, profile, max_batch=top_batch)
    if not allow_large:
        from strait_sim.cli.workload_options import workload_from_options
        from strait_sim.sweep.points import load_profile
        from strait_sim.work_limit import check_work, expected_requests

        built = workload_from_options(dict(wl), load_profile(profile), gpus=1,
                                      max_batch=top_batch)
        check_work(expected_requests(built), runs_at_once=workers, what="each simulation")
    evaluator = Evaluator(profile, wl, list(targets), cost, confidence=confidence,
                          interference=interference, pcie=pcie, workers=workers,
                          executor=executor, scheduler=scheduler,
                          out=Path(out) if out is not None else None, force=force,
                          allow_large=allow_large)
    seed_list = list(range(first_seed, first_seed + seeds))
    evaluator.spec(Config(space.families[0], space.gpus_min), first_seed)
    if out is not None:  # every input checked: only now the folder appears, marked
        open_resumable_folder(out, "plan")
    work = offered_gpus(wl, profile, seed=first_seed)
    start = math.ceil(work) if work is not None else None
    if log is not None and work is not None:
        log(f"offered solo work: {work:.2f} GPUs; the search starts at {start}")
    if exhaustive:
        result = grid_search(space, cost, evaluator.evaluate, seed_list, log=log)
    else:
        result = search(space, cost, evaluator.evaluate, seed_list, start=start, log=log)
    verification, verify_list = [], []
    if verify_seeds:
        verify_list = list(range(first_seed + seeds, first_seed + seeds + verify_seeds))
        verification = verify(result, evaluator, verify_list, log=log)
    return PlanResult(profile, wl, list(targets), space, seed_list, confidence, result,
                      pareto_front(result.points), evaluator.simulations_run,
                      evaluator.simulations_reused, verification, verify_list)


def verify(result: SearchResult, evaluator: Evaluator, seeds: list[int], *,
           log: Callable[[str], None] | None = None) -> list[Verification]:
    """Each group's answer and one GPU fewer, on ``seeds`` (in one batch of runs)."""
    answers = [(name, g.best) for name, g in result.groups.items() if g.best is not None]
    configs: list[Config] = []
    for _, best in answers:
        configs.append(best.config)
        if best.config.gpus > 1:
            configs.append(Config(best.config.family, best.config.gpus - 1))
    if not configs:
        return []
    points = {p.config: p for p in evaluator.evaluate(configs, seeds)}
    out = []
    for name, best in answers:
        fewer = Config(best.config.family, best.config.gpus - 1)
        v = Verification(name, points[best.config], points.get(fewer))
        out.append(v)
        if log is not None:
            below = (f"; {fewer.gpus} GPU(s): {v.one_fewer.verdict}"
                     if v.one_fewer is not None else "")
            log(f"verify {name}: {best.config.gpus} GPU(s) on {len(seeds)} fresh seeds: "
                f"{v.answer.verdict}{below}")
    return out
