"""The search: the fewest GPUs per family by galloping and bisection, pruned by cost.

Assumption: for a fixed family (policy, parameters, slots, largest batch), adding a GPU
never makes a target harder to meet. Then "meets the targets" is a step function of the GPU
count, and its step is found by

1. **galloping** from a start count: up by 1, 2, 4, ... while the targets are missed, or
   down by 1, 2, 4, ... while they are met, until both a met and a missed count are known;
2. **bisection** between the largest missed and the smallest met count.

That costs about 2 log2(distance from the start) evaluations instead of one per count.

**Pruning.** Families are grouped (by policy: the question is "the fewest GPUs per
policy"). Within a group, once a family meets the targets at cost C, another family is
only asked whether it meets them at the largest GPU count whose cost is below C (the cost
never decreases with the GPU count): if not, none of its cheaper counts can (monotonicity),
so the family is settled with one evaluation; if so, it becomes the group's best and the
search gallops down from there. Points whose cost is not below the best known are
dominated and never simulated.

**Start counts.** The first group runs alone, galloping from a start count (the offered
solo work in GPUs, rounded up, when the caller knows it; else the smallest count). The
other groups then run side by side (their points share one batch of simulations per
round), each starting at the best count found so far, which is usually within a GPU or two
of their own answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from strait_sim.plan.evaluate import EvaluateFn, PointResult
from strait_sim.plan.space import Config, CostFunction, Family, SearchSpace

VERDICT_MARKS = {"meets": "M", "misses": "x", "unsure": "?"}  # for the --exhaustive lines


class FamilySearch:
    """The smallest GPU count in [gmin, cap] at which one family meets the targets."""

    def __init__(self, family: Family, gmin: int, cap: int, start: int) -> None:
        self.family = family
        self.gmin = gmin
        self.cap = cap
        self.lo = gmin - 1  # largest count known to miss (gmin - 1: none yet)
        self.hi: int | None = None  # smallest count known to meet
        self.step = 1
        self.start = min(max(start, gmin), cap)
        self.probes: list[int] = []

    @property
    def done(self) -> bool:
        if self.cap < self.gmin:
            return True
        if self.hi is not None:
            return self.hi == self.gmin or self.hi - self.lo == 1
        return self.lo >= self.cap

    @property
    def answer(self) -> int | None:
        return self.hi if self.done else None

    def propose(self) -> int | None:
        """The next GPU count to evaluate, or None when settled."""
        if self.done:
            return None
        if not self.probes:
            return self.start
        if self.hi is None:  # only misses so far: gallop up
            g = min(self.lo + self.step, self.cap)
        elif self.lo < self.gmin:  # only meets so far: gallop down
            g = max(self.hi - self.step, self.gmin)
        else:
            return (self.lo + self.hi) // 2
        self.step *= 2
        return g

    def record(self, gpus: int, meets: bool) -> None:
        first = not self.probes
        self.probes.append(gpus)
        if meets:
            self.hi = gpus if self.hi is None else min(self.hi, gpus)
        else:
            self.lo = max(self.lo, gpus)
        if first:
            self.step = 1


@dataclass
class FamilyOutcome:
    family: Family
    answer: int | None
    probes: list[int]
    status: str  # "found", "none in range", "cannot beat the group's best"


@dataclass
class GroupResult:
    """The search's result for one group (one policy)."""

    name: str
    best: PointResult | None = None
    families: list[FamilyOutcome] = field(default_factory=list)


@dataclass
class SearchResult:
    groups: dict[str, GroupResult]
    points: list[PointResult]  # every configuration evaluated, in order
    rounds: int

    @property
    def best(self) -> PointResult | None:
        found = [g.best for g in self.groups.values() if g.best is not None]
        return min(found, key=lambda p: (p.cost, p.config.gpus)) if found else None


class _GroupRunner:
    """Walks the families of one group one after the other."""

    def __init__(self, name: str, families: list[Family], space: SearchSpace,
                 cost: CostFunction) -> None:
        self.result = GroupResult(name)
        self.pending = list(families)
        self.space = space
        self.cost = cost
        self.current: FamilySearch | None = None

    def _start_next(self, hint: int | None) -> None:
        family = self.pending.pop(0)
        gmin, gmax = self.space.gpus_min, self.space.gpus_max
        best = self.result.best
        if best is None:
            cap, start = gmax, (hint if hint is not None else gmin)
        else:  # only counts cheaper than the group's best are of interest
            cheaper = [g for g in self.space.gpu_counts
                       if self.cost(Config(family, g)) < best.cost]
            cap = max(cheaper) if cheaper else gmin - 1
            start = cap
        self.current = FamilySearch(family, gmin, cap, start)

    def propose(self, hint: int | None) -> Config | None:
        while True:
            if self.current is not None:
                g = self.current.propose()
                if g is not None:
                    return Config(self.current.family, g)
                self._finish()
            if not self.pending:
                return None
            self._start_next(hint)

    def _finish(self) -> None:
        fs = self.current
        assert fs is not None
        if fs.answer is not None:
            status = "found"
        elif self.result.best is not None and fs.cap < self.space.gpus_max:
            status = "cannot beat the group's best"
        else:
            status = "none in range"
        self.result.families.append(FamilyOutcome(fs.family, fs.answer, fs.probes, status))
        self.current = None

    def record(self, point: PointResult) -> None:
        assert self.current is not None
        self.current.record(point.config.gpus, point.meets)
        if point.meets and (self.result.best is None or point.cost < self.result.best.cost):
            self.result.best = point


def search(space: SearchSpace, cost: CostFunction, evaluate: EvaluateFn, seeds: list[int],
           *, group_of: Callable[[Family], str] = lambda f: f.policy,
           start: int | None = None,
           log: Callable[[str], None] | None = None) -> SearchResult:
    """Find, per group, the cheapest family and GPU count that meet the targets.

    ``start``: where the very first family starts galloping (default: the smallest
    count); :func:`strait_sim.plan.runner.plan` passes the offered work in GPUs."""
    grouped: dict[str, list[Family]] = {}
    for family in space.families:
        grouped.setdefault(group_of(family), []).append(family)
    runners = [_GroupRunner(name, fams, space, cost) for name, fams in grouped.items()]
    points: list[PointResult] = []
    rounds = 0

    def hint() -> int | None:
        found = [r.result.best.config.gpus for r in runners if r.result.best is not None]
        return min(found) if found else start

    waves = [runners[:1], runners[1:]]
    for wave in waves:
        active = list(wave)
        while active:
            proposals = [(r, r.propose(hint())) for r in active]
            active = [r for r, c in proposals if c is not None]
            configs = [c for _, c in proposals if c is not None]
            if not configs:
                break
            rounds += 1
            results = evaluate(configs, seeds)
            for runner, point in zip(active, results, strict=True):
                runner.record(point)
                points.append(point)
                if log is not None:
                    log(_describe(rounds, point))
    return SearchResult({r.result.name: r.result for r in runners}, points, rounds)


def _describe(round_no: int, point: PointResult) -> str:
    parts = []
    for target, b in point.bounds.items():
        side = b.lower if target.higher_is_better else b.upper
        parts.append(f"{target.cls} {target.metric} {b.mean:.4g} (bound {side:.4g})")
    return f"round {round_no}: {point.config.label()}: {point.verdict}; " + ", ".join(parts)


def grid_search(space: SearchSpace, cost: CostFunction, evaluate: EvaluateFn,
                seeds: list[int], *, group_of: Callable[[Family], str] = lambda f: f.policy,
                log: Callable[[str], None] | None = None) -> SearchResult:
    """Every configuration of the space, no assumption: the reference the search is checked
    against (``strait-sim plan --exhaustive``). Per family the answer is the smallest GPU
    count that meets the targets; a family whose counts are not monotone shows up as a
    meets-then-misses pattern in the points table."""
    configs = [Config(f, g) for f in space.families for g in space.gpu_counts]
    points = evaluate(configs, seeds)
    groups: dict[str, GroupResult] = {}
    by_family: dict[Family, list[PointResult]] = {}
    for p in points:
        by_family.setdefault(p.config.family, []).append(p)
    for family in space.families:
        group = groups.setdefault(group_of(family), GroupResult(group_of(family)))
        fam_points = by_family[family]
        met = [p for p in fam_points if p.meets]
        answer = min(met, key=lambda p: p.config.gpus) if met else None
        group.families.append(FamilyOutcome(
            family, answer.config.gpus if answer else None,
            [p.config.gpus for p in fam_points], "found" if answer else "none in range"))
        cheapest = min(met, key=lambda p: (p.cost, p.config.gpus)) if met else None
        if cheapest is not None and (group.best is None or cheapest.cost < group.best.cost):
            group.best = cheapest
        if log is not None:
            log(f"grid: {family.label()}: "
                + " ".join(f"{p.config.gpus}:{VERDICT_MARKS[p.verdict]}" for p in fam_points))
    return SearchResult(groups, points, 1)
