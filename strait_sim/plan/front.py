"""The Pareto front of evaluated configurations: cost against HP and LP attainment.

Attainment is a class's on-time share, averaged over the seeds. A configuration is on the
front when no other evaluated configuration is at most as expensive and at least as good
for both classes, and strictly better in one of the three. The front covers the points the
search evaluated, not the whole grid: the search spends its simulations near each family's
threshold, which is where the trade-off between cost and attainment is decided.
"""

from __future__ import annotations

from strait_sim.plan.evaluate import PointResult


def _objectives(p: PointResult) -> tuple[float, float, float]:
    return (p.cost, -p.on_time["high"], -p.on_time["low"])  # all to be minimised


def dominates(a: PointResult, b: PointResult) -> bool:
    oa, ob = _objectives(a), _objectives(b)
    return all(x <= y for x, y in zip(oa, ob, strict=True)) and oa != ob


def pareto_front(points: list[PointResult]) -> list[PointResult]:
    """The non-dominated points, by cost then HP attainment (best first)."""
    unique = list({(p.config, p.seeds): p for p in points}.values())
    front = [p for p in unique if not any(dominates(q, p) for q in unique if q is not p)]
    return sorted(front, key=lambda p: (p.cost, -p.on_time["high"], -p.on_time["low"]))
