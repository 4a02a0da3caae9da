"""What each request asks for: its model, priority class, deadline and number of items.

The arrival process says *when*; :class:`RequestAttributes` says *what*. Both generated
workloads and trace replays use it, the latter only for the columns a trace leaves out
(a hand-written trace may give nothing but arrival times).

Rules, all resolved and validated at construction:

* model: drawn from a weighted mix (``--mix resnet50=3,bert=1``; equal weights by default);
* priority: a share of high-priority requests (``--hp-fraction``), or a share per model
  (``--hp-models bert`` makes every bert request HP and the rest LP;
  ``--hp-models bert=0.5`` half of them);
* deadline, per class: ``slo`` x the model's median solo latency at batch = items, from the
  profile, or an absolute ``deadline_ms`` after arrival;
* items: a fixed count, a uniform range, or a weighted choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from strait_sim.profile_bundle import ProfileBundle
from strait_sim.requests import HIGH, LOW, PRIORITY_NAMES, RequestChunk


@dataclass(frozen=True)
class DeadlineRule:
    """How one priority class gets its deadline: ``slo`` (a multiple of solo latency) or
    ``ms`` (a fixed time after arrival)."""

    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in ("slo", "ms"):
            raise ValueError(f"deadline rule kind must be 'slo' or 'ms', got {self.kind!r}")
        if not (math.isfinite(self.value) and self.value > 0):
            what = "slo multiple" if self.kind == "slo" else "deadline in ms"
            raise ValueError(f"{what} must be a finite number > 0, got {self.value}")

    def describe(self) -> dict:
        return {"slo": self.value} if self.kind == "slo" else {"deadline_ms": self.value}

    @classmethod
    def from_description(cls, desc: dict) -> DeadlineRule:
        if "slo" in desc:
            return cls("slo", float(desc["slo"]))
        return cls("ms", float(desc["deadline_ms"]))


@dataclass(frozen=True)
class ItemsDist:
    """Items per request: ``values`` drawn in proportion to ``weights``."""

    values: tuple[int, ...] = (1,)
    weights: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if not self.values or len(self.values) != len(self.weights):
            raise ValueError("items: values and weights must be non-empty and equally long")
        if any(int(v) != v or v < 1 for v in self.values):
            raise ValueError(f"items must be whole numbers >= 1, got {list(self.values)}")
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"items: value listed twice in {list(self.values)}")
        w = np.asarray(self.weights, dtype=float)
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("items: weights must be >= 0 and not all 0")
        object.__setattr__(self, "values", tuple(int(v) for v in self.values))
        object.__setattr__(self, "weights", tuple(float(x) for x in w))

    @property
    def probs(self) -> np.ndarray:
        w = np.asarray(self.weights)
        return w / w.sum()

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if len(self.values) == 1:
            return np.full(n, self.values[0], dtype=np.int32)
        idx = rng.choice(len(self.values), size=n, p=self.probs)
        return np.asarray(self.values, dtype=np.int32)[idx]

    @property
    def mean(self) -> float:
        return float(np.dot(self.values, self.probs))

    def describe(self) -> dict:
        return {"values": list(self.values), "weights": list(self.weights)}


class SoloTable:
    """Median solo latency (seconds) per (model index, items), looked up once per pair.

    Deadlines need ``profile.solo_ms(model, items)`` for every request; asking the profile
    per request would dominate generation time, so each chunk asks only for its distinct
    pairs and the answers are kept.
    """

    def __init__(self, profile: ProfileBundle, models: tuple[str, ...]) -> None:
        self.profile = profile
        self.models = models
        self._cache: dict[tuple[int, int], float] = {}

    def seconds(self, model: np.ndarray, items: np.ndarray) -> np.ndarray:
        key = model.astype(np.int64) * (1 << 32) + items.astype(np.int64)
        uniq, inverse = np.unique(key, return_inverse=True)
        vals = np.empty(len(uniq))
        for i, k in enumerate(uniq.tolist()):
            pair = (k >> 32, k & 0xFFFFFFFF)
            if pair not in self._cache:
                self._cache[pair] = self.profile.solo_ms(self.models[pair[0]], pair[1]) / 1e3
            vals[i] = self._cache[pair]
        return vals[inverse.reshape(-1)]

    def one(self, model: int, items: int) -> float:
        """Solo seconds of one (model index, items) pair (the closed loop's path)."""
        pair = (int(model), int(items))
        if pair not in self._cache:
            self._cache[pair] = self.profile.solo_ms(self.models[pair[0]], pair[1]) / 1e3
        return self._cache[pair]


@dataclass(frozen=True)
class RequestAttributes:
    """Resolved rules for the model, class, deadline and items of each request."""

    models: tuple[str, ...]
    weights: tuple[float, ...]
    hp_fraction: float = 0.2
    hp_by_model: tuple[float, ...] | None = None
    deadline_high: DeadlineRule = DeadlineRule("slo", 5.0)
    deadline_low: DeadlineRule = DeadlineRule("slo", 5.0)
    items: ItemsDist = ItemsDist()

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("no models given")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"a model is listed twice in {list(self.models)}")
        if len(self.models) > np.iinfo(np.int16).max:
            raise ValueError("too many models")
        if len(self.weights) != len(self.models):
            raise ValueError("one mix weight per model is needed")
        w = np.asarray(self.weights, dtype=float)
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("mix weights must be >= 0 and not all 0")
        object.__setattr__(self, "weights", tuple(float(x) for x in w))
        if not 0 <= self.hp_fraction <= 1:
            raise ValueError(f"HP fraction must be in [0, 1], got {self.hp_fraction}")
        if self.hp_by_model is not None:
            if len(self.hp_by_model) != len(self.models):
                raise ValueError("one HP fraction per model is needed")
            if any(not 0 <= f <= 1 for f in self.hp_by_model):
                raise ValueError("HP fractions per model must be in [0, 1]")
            object.__setattr__(self, "hp_by_model", tuple(float(f) for f in self.hp_by_model))

    # -- drawing -------------------------------------------------------------------------
    def draw_models(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if len(self.models) == 1:
            return np.zeros(n, dtype=np.int16)
        return rng.choice(len(self.models), size=n, p=self.probs).astype(np.int16)

    @property
    def probs(self) -> np.ndarray:
        """The mix as probabilities (weights are kept as given, so descriptions round-trip
        exactly)."""
        w = np.asarray(self.weights)
        return w / w.sum()

    def draw_priority(self, rng: np.random.Generator, model: np.ndarray) -> np.ndarray:
        u = rng.random(len(model))
        frac = (np.asarray(self.hp_by_model)[model] if self.hp_by_model is not None
                else self.hp_fraction)
        return np.where(u < frac, HIGH, LOW).astype(np.int8)

    def deadlines(self, solo: SoloTable, arrival: np.ndarray, model: np.ndarray,
                  priority: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Absolute deadlines (seconds) under the per-class rules."""
        rules = (self.deadline_high, self.deadline_low)
        out = np.empty(len(arrival))
        need_solo = any(r.kind == "slo" for r in rules)
        solo_s = solo.seconds(model, items) if need_solo and len(arrival) else None
        for cls, rule in zip((HIGH, LOW), rules, strict=True):
            mask = priority == cls
            if not mask.any():
                continue
            if rule.kind == "slo":
                assert solo_s is not None
                out[mask] = arrival[mask] + rule.value * solo_s[mask]
            else:
                out[mask] = arrival[mask] + rule.value / 1e3
        return out

    def deadline_one(self, solo: SoloTable, arrival: float, model: int, priority: int,
                     items: int) -> float:
        """Absolute deadline of one request (same rule as :meth:`deadlines`)."""
        rule = self.deadline_high if priority == HIGH else self.deadline_low
        if rule.kind == "slo":
            return arrival + rule.value * solo.one(model, items)
        return arrival + rule.value / 1e3

    def make_chunk(self, rng: np.random.Generator, solo: SoloTable, arrival: np.ndarray,
                   models: tuple[str, ...] | None = None, model: np.ndarray | None = None,
                   priority: np.ndarray | None = None, items: np.ndarray | None = None,
                   deadline: np.ndarray | None = None) -> RequestChunk:
        """A chunk for ``arrival``, drawing every column not given (in a fixed order:
        model, priority, items, so the same seed gives the same requests)."""
        n = len(arrival)
        if model is None:
            model = self.draw_models(rng, n)
        if priority is None:
            priority = self.draw_priority(rng, model)
        if items is None:
            items = self.items.draw(rng, n)
        if deadline is None:
            deadline = self.deadlines(solo, arrival, model, priority, items)
        return RequestChunk(models or self.models, np.asarray(arrival, dtype=np.float64),
                            model.astype(np.int16, copy=False),
                            priority.astype(np.int8, copy=False),
                            np.asarray(deadline, dtype=np.float64),
                            items.astype(np.int32, copy=False))

    # -- description ---------------------------------------------------------------------
    def describe(self) -> dict:
        return {
            "models": list(self.models),
            "mix": dict(zip(self.models, self.weights, strict=True)),
            "hp_fraction": None if self.hp_by_model is not None else self.hp_fraction,
            "hp_models": (dict(zip(self.models, self.hp_by_model, strict=True))
                          if self.hp_by_model is not None else None),
            "deadline": {PRIORITY_NAMES[HIGH]: self.deadline_high.describe(),
                         PRIORITY_NAMES[LOW]: self.deadline_low.describe()},
            "items": self.items.describe(),
        }

    @classmethod
    def from_description(cls, desc: dict) -> RequestAttributes:
        models = tuple(desc["models"])
        hp_models = desc.get("hp_models")
        return cls(
            models=models,
            weights=tuple(float(desc["mix"][m]) for m in models),
            hp_fraction=float(desc["hp_fraction"]) if desc.get("hp_fraction") is not None
            else 0.0,
            hp_by_model=tuple(float(hp_models[m]) for m in models) if hp_models else None,
            deadline_high=DeadlineRule.from_description(desc["deadline"]["high"]),
            deadline_low=DeadlineRule.from_description(desc["deadline"]["low"]),
            items=ItemsDist(tuple(desc["items"]["values"]), tuple(desc["items"]["weights"])),
        )
