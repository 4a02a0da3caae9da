"""The search space of a plan and the cost of a configuration.

A *family* is everything about a deployment except its GPU count: policy, policy
parameters, slots per GPU and largest batch. The search walks the GPU count of each family
(where more GPUs never hurt, so the targets are monotone in it) and compares families
by cost. The cost is a function of a :class:`Config`; the default is the GPU count. It
must not decrease when GPUs are added (checked over the range before anything runs),
since the search prunes on that.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strait_sim.errors import UserError


@dataclass(frozen=True)
class Family:
    """A deployment without its GPU count."""

    policy: str
    params: tuple[tuple[str, Any], ...] = ()
    slots: int = 2
    max_batch: int = 8

    @property
    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def label(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.params)
        return f"{self.policy}{extra} slots={self.slots} max_batch={self.max_batch}"


@dataclass(frozen=True)
class Config:
    """One deployment: a family on ``gpus`` GPUs."""

    family: Family
    gpus: int

    def label(self) -> str:
        return f"{self.family.label()} gpus={self.gpus}"


CostFunction = Callable[[Config], float]


def gpu_count_cost(config: Config) -> float:
    """The default cost: the number of GPUs."""
    return float(config.gpus)


@dataclass(frozen=True)
class SearchSpace:
    """GPU counts [gpus_min, gpus_max] times the families."""

    families: tuple[Family, ...]
    gpus_min: int
    gpus_max: int

    def __post_init__(self) -> None:
        if not self.families:
            raise UserError("the search space is empty: no policy, slot count or batch size")
        if self.gpus_min < 1 or self.gpus_max < self.gpus_min:
            raise UserError(f"the search space is empty: --gpus {self.gpus_min}:"
                            f"{self.gpus_max} holds no GPU count >= 1")

    @property
    def gpu_counts(self) -> range:
        return range(self.gpus_min, self.gpus_max + 1)

    def size(self) -> int:
        """Configurations in the full grid."""
        return len(self.families) * len(self.gpu_counts)


def build_space(policies: list[str], params: dict[str, dict[str, list[Any]]],
                slots: list[int], max_batch: list[int], gpus: tuple[int, int]) -> SearchSpace:
    """Every combination of policy (with each combination of its parameter values), slots
    and largest batch; ``params[policy][name]`` lists the values to try."""
    families = []
    for policy in policies:
        grid = params.get(policy, {})
        names = sorted(grid)
        for values in itertools.product(*(grid[n] for n in names)):
            for s in slots:
                for b in max_batch:
                    families.append(Family(policy, tuple(zip(names, values, strict=True)),
                                           s, b))
    return SearchSpace(tuple(families), gpus[0], gpus[1])


def check_cost(space: SearchSpace, cost: CostFunction) -> None:
    """The cost must be finite and never decrease with the GPU count."""
    for family in space.families:
        prev = -math.inf
        for g in space.gpu_counts:
            try:
                c = float(cost(Config(family, g)))
            except (ArithmeticError, TypeError, ValueError) as exc:
                raise UserError(f"--cost: cannot be computed at {family.label()} gpus={g}: "
                                f"{exc}") from None
            if not math.isfinite(c):
                raise UserError(f"--cost: not a finite number at {family.label()} gpus={g}")
            if c < prev:
                raise UserError(f"--cost must not decrease when GPUs are added; it does at "
                                f"{family.label()} gpus={g}")
            prev = c


# -- parsing the CLI's values ---------------------------------------------------------------


def parse_gpu_range(text: str) -> tuple[int, int]:
    """``8`` -> (8, 8); ``1:16`` or ``1-16`` -> (1, 16)."""
    raw = text.strip()
    sep = ":" if ":" in raw else "-" if "-" in raw.lstrip("-") else None
    parts = raw.split(sep, 1) if sep else [raw, raw]
    try:
        lo, hi = int(parts[0]), int(parts[1])
    except ValueError:
        raise UserError(f"--gpus: expected N or MIN:MAX (e.g. 1:16), got '{text}'") from None
    if lo < 1 or hi < lo:
        raise UserError(f"the search space is empty: --gpus {text} holds no GPU count >= 1")
    return lo, hi


def parse_int_list(text: str, flag: str) -> list[int]:
    """``1,2,4`` -> [1, 2, 4] (each >= 1, duplicates dropped)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UserError(f"the search space is empty: {flag} has no value")
    out = []
    for item in items:
        try:
            v = int(item)
        except ValueError:
            raise UserError(f"{flag}: '{item}' is not a whole number") from None
        if v < 1:
            raise UserError(f"{flag}: each value must be at least 1, got {v}")
        out.append(v)
    return list(dict.fromkeys(out))


def parse_param_grid(items: list[str], policies: list[str]) -> dict[str, dict[str, list]]:
    """``--param strait.hp_risk=0.01,0.05`` (repeatable) -> {policy: {name: [values]}}.

    A value written as a JSON list is the list of values; otherwise the text is split on
    commas and each piece read as JSON (numbers, true/false) or kept as text."""
    out: dict[str, dict[str, list]] = {p: {} for p in policies}
    for item in items:
        target, eq, raw = item.partition("=")
        policy, dot, name = target.partition(".")
        if not eq or not dot or not policy or not name or not raw.strip():
            raise UserError(f"--param '{item}': expected POLICY.NAME=V1[,V2...], e.g. "
                            f"strait.hp_risk=0.01,0.05")
        if policy not in out:
            raise UserError(f"--param '{item}': policy '{policy}' is not in --policies "
                            f"({', '.join(policies)})")
        if name in out[policy]:
            raise UserError(f"--param '{item}': {policy}.{name} is given twice")
        try:
            parsed = json.loads(raw)
            values = parsed if isinstance(parsed, list) else [parsed]
        except json.JSONDecodeError:
            values = [_json_or_text(v.strip()) for v in raw.split(",")]
        if not values or any(v == "" for v in values):
            raise UserError(f"the search space is empty: --param '{item}' has an empty value")
        out[policy][name] = values
    return out


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# -- a cost written as an arithmetic expression -------------------------------------------

_OPS: dict[type, Callable[..., float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow, ast.USub: operator.neg,
    ast.UAdd: operator.pos}
COST_NAMES = ("gpus", "slots", "max_batch")


def _is_number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, int | float) \
        and not isinstance(node.value, bool)


def cost_from_expression(text: str) -> CostFunction:
    """``--cost "2.5*gpus + 0.1*gpus*slots"``: numbers, + - * / **, parentheses and the
    names gpus, slots, max_batch; nothing else is evaluated."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise UserError(f"--cost: '{text}' is not an arithmetic expression") from None

    def check(node: ast.AST) -> None:
        if isinstance(node, ast.Expression):
            check(node.body)
        elif isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            check(node.left)
            check(node.right)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            check(node.operand)
        elif not (_is_number(node) or (isinstance(node, ast.Name)
                                       and node.id in COST_NAMES)):
            raise UserError(f"--cost: '{text}' may use only numbers, + - * / ** and "
                            f"{', '.join(COST_NAMES)}")

    check(tree)

    def evaluate(node: ast.AST, env: dict[str, float]) -> float:
        if isinstance(node, ast.Expression):
            return evaluate(node.body, env)
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](evaluate(node.left, env), evaluate(node.right, env))
        if isinstance(node, ast.UnaryOp):
            return _OPS[type(node.op)](evaluate(node.operand, env))
        if isinstance(node, ast.Constant):
            return float(node.value)
        return env[node.id]  # type: ignore[attr-defined]

    def cost(config: Config) -> float:
        # floats, as the constants are: an int ** int is exact big-integer arithmetic, and
        # gpus**gpus**gpus**gpus at 3 GPUs would never end (floats overflow at once)
        return float(evaluate(tree, {"gpus": float(config.gpus),
                                     "slots": float(config.family.slots),
                                     "max_batch": float(config.family.max_batch)}))

    return cost
