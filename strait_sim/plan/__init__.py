"""Capacity planning: the cheapest deployment that meets per-class targets, by simulation.

``plan()`` (:mod:`strait_sim.plan.runner`) is the Python entry point of
``strait-sim plan``; see docs/planning.md.
"""

from strait_sim.plan.runner import PlanResult, plan
from strait_sim.plan.space import Config, Family, SearchSpace, build_space, gpu_count_cost
from strait_sim.plan.targets import Target, parse_targets

__all__ = ["Config", "Family", "PlanResult", "SearchSpace", "Target", "build_space",
           "gpu_count_cost", "parse_targets", "plan"]
