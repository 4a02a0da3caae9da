"""From flags or an experiment file to a validated workload, and back from a description.

One set of keys serves the CLI flags (``--hp-fraction`` is key ``hp_fraction``) and the
``[workload]`` table of a TOML experiment file (``hp_fraction`` or ``hp-fraction``).
Flags given on the command line override the file. Every value is checked here, and every
problem becomes one :class:`~strait_sim.errors.UserError` line naming the flag, or the
file and key, it came from.

:func:`workload_from_description` rebuilds a workload from ``Workload.describe()`` (the
run summary keeps it), so that any run can be repeated exactly.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strait_sim.errors import UnknownNameError, UserError
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.requests import HIGH, LOW, priority_code
from strait_sim.workloads.arrivals import (
    PROCESSES,
    ArrivalProcess,
    DiurnalArrivals,
    GammaArrivals,
    MMPPArrivals,
    PoissonArrivals,
    process_from_description,
)
from strait_sim.workloads.attributes import DeadlineRule, ItemsDist, RequestAttributes
from strait_sim.workloads.base import Workload
from strait_sim.workloads.closed import THINK_DISTS, ClosedLoopWorkload
from strait_sim.workloads.generated import GeneratedWorkload
from strait_sim.workloads.load import check_capacity_batch, mean_work_s, rate_for_load
from strait_sim.workloads.trace import (
    MAPPINGS,
    PACKAGED_TRACES,
    TraceWorkload,
    check_trace_models,
    file_sha256,
    packaged_trace_path,
    scan_trace,
)
from strait_sim.workloads.tracefile import TraceReader

TRACE_KINDS = ("trace", *PACKAGED_TRACES)
KINDS = (*PROCESSES, "closed", *TRACE_KINDS)

DEFAULT_KIND = "poisson"
DEFAULT_LOAD = 0.8
DEFAULT_DURATION_S = 60.0
DEFAULT_HP_FRACTION = 0.2
DEFAULT_SLO = 5.0
DEFAULT_CV = 2.0
DEFAULT_CLIENTS = 8
DEFAULT_THINK_MS = 100.0

# key -> the workload kinds it applies to (None: all kinds).
APPLIES: dict[str, tuple[str, ...] | None] = {
    "workload": None, "rate": (*PROCESSES, *TRACE_KINDS), "load": (*PROCESSES, *TRACE_KINDS),
    "capacity_batch": (*PROCESSES, *TRACE_KINDS), "duration": None, "max_requests": None,
    "models": None, "mix": None, "hp_fraction": None, "hp_models": None, "slo": None,
    "deadline_ms": None, "items": None,
    "cv": ("gamma",),
    "burst_ratio": ("mmpp",), "burst_fraction": ("mmpp",), "burst_s": ("mmpp",),
    "diurnal_amplitude": ("diurnal",), "diurnal_period": ("diurnal",),
    "diurnal_phase": ("diurnal",),
    "clients": ("closed",), "think_ms": ("closed",), "think_dist": ("closed",),
    "trace": ("trace",), "trace_map": TRACE_KINDS, "token_buckets": TRACE_KINDS,
    "window": TRACE_KINDS, "time_scale": TRACE_KINDS, "rate_scale": TRACE_KINDS,
}
KEYS = tuple(APPLIES)


class Values:
    """The merged settings, each remembering where it came from (for error lines)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.where: dict[str, str] = {}
        self.base_dir: dict[str, Path] = {}

    def set(self, key: str, value: Any, where: str, base_dir: Path | None = None) -> None:
        self.values[key] = value
        self.where[key] = where
        if base_dir is not None:
            self.base_dir[key] = base_dir

    def has(self, key: str) -> bool:
        return self.values.get(key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        v = self.values.get(key)
        return default if v is None else v

    def label(self, key: str) -> str:
        return self.where.get(key, flag(key))

    def fail(self, key: str, message: str) -> UserError:
        return UserError(f"{self.label(key)}: {message}")


def flag(key: str) -> str:
    return "--" + ("workload" if key == "workload" else key.replace("_", "-"))


# -- reading an experiment file ---------------------------------------------------------


def read_config(path: Path | str, values: Values) -> None:
    """Put the ``[workload]`` table of a TOML experiment file into ``values``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text (UTF-8) file") from None
    table = doc.get("workload")
    if table is None:
        raise UserError(f"{path}: has no [workload] table")
    if not isinstance(table, dict):
        raise UserError(f"{path}: 'workload' must be a table ([workload])")
    seen: dict[str, str] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key == "kind":
            key = "workload"
        if key not in APPLIES:
            raise UserError(f"{path}: [workload] unknown key '{raw_key}'; valid: kind, "
                            f"{', '.join(k for k in KEYS if k != 'workload')}")
        if key in seen:
            raise UserError(f"{path}: [workload] '{raw_key}' and '{seen[key]}' set the same "
                            f"thing")
        seen[key] = raw_key
        values.set(key, value, f"{path}: [workload] {raw_key}", base_dir=path.parent)


def merge_options(opts: dict) -> Values:
    """Config file first, then the flags that were given (not None) on top."""
    values = Values()
    if opts.get("config"):
        read_config(opts["config"], values)
    for key in KEYS:
        if opts.get(key) is not None:
            values.set(key, opts[key], flag(key))
            values.base_dir.pop(key, None)
    return values  # keys that are not workload keys (another group's flags) are ignored


# -- value parsers ----------------------------------------------------------------------


def _number(v: Values, key: str, *, lo: float | None = None, lo_open: bool = False,
            hi: float | None = None, integer: bool = False) -> float | None:
    raw = v.values.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise v.fail(key, f"must be a number, got {raw!r}")
    if isinstance(raw, str):
        try:
            raw = float(raw.strip())
        except ValueError:
            raise v.fail(key, f"must be a number, got {raw!r}") from None
    if not isinstance(raw, int | float):
        raise v.fail(key, f"must be a number, got {raw!r}")
    x = float(raw)
    if not math.isfinite(x):
        raise v.fail(key, f"must be a finite number, got {raw!r}")
    if integer and x != int(x):
        raise v.fail(key, f"must be a whole number, got {raw!r}")
    if lo is not None and (x <= lo if lo_open else x < lo):
        raise v.fail(key, f"must be {'>' if lo_open else '>='} {lo:g}, got {raw!r}")
    if hi is not None and x > hi:
        raise v.fail(key, f"must be <= {hi:g}, got {raw!r}")
    return int(x) if integer else x


def _string(v: Values, key: str, choices: tuple[str, ...] | None = None) -> str | None:
    raw = v.values.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise v.fail(key, f"must be a string, got {raw!r}")
    s = raw.strip()
    if choices is not None and s not in choices:
        raise v.fail(key, f"unknown value '{s}'; valid: {', '.join(choices)}")
    return s


def _pairs(v: Values, key: str) -> list[tuple[str, str | None]]:
    """``a=1,b`` / ``["a", "b"]`` / ``{a = 1}`` / ``5`` as (name, value or None) pairs.

    An empty TOML list or table is refused here, as the flag's ``''`` is below: every
    key read through this function needs at least one entry, and an empty one would
    otherwise reach the workload classes (a traceback) or be dropped silently.
    """
    raw = v.values.get(key)
    if isinstance(raw, dict | list) and not raw:
        raise v.fail(key, f"no entries in {raw!r}")
    if isinstance(raw, dict):
        return [(str(k).strip(), None if x is None else str(x)) for k, x in raw.items()]
    if isinstance(raw, list):
        return [(str(x).strip(), None) for x in raw]
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return [(str(raw), None)]
    if not isinstance(raw, str):
        raise v.fail(key, f"cannot read {raw!r}")
    out = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            raise v.fail(key, f"empty entry in {raw!r}")
        name, eq, val = part.partition("=")
        if eq and not val.strip():
            raise v.fail(key, f"'{part}' has no value after '='")
        out.append((name.strip(), val.strip() if eq else None))
    return out


def _float_of(v: Values, key: str, text: str, *, lo: float = 0.0, lo_open: bool = False,
              hi: float | None = None) -> float:
    try:
        x = float(text)
    except ValueError:
        raise v.fail(key, f"'{text}' is not a number") from None
    if not math.isfinite(x) or (x <= lo if lo_open else x < lo) or (hi is not None and x > hi):
        bound = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None
                                                         else "")
        raise v.fail(key, f"'{text}' must be a number {bound}")
    return x


def _models(v: Values, profile: ProfileBundle,
            fallback: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if v.has("models"):
        names = tuple(n for n, _ in _pairs(v, "models"))
        if any(val is not None for _, val in _pairs(v, "models")):
            raise v.fail("models", "takes model names only (weights go in --mix)")
    elif v.has("mix") and any(val is not None for _, val in _pairs(v, "mix")):
        names = tuple(n for n, _ in _pairs(v, "mix"))
    else:
        names = fallback if fallback is not None else profile.model_names
        return tuple(names)
    if len(set(names)) != len(names):
        raise v.fail("models" if v.has("models") else "mix", "a model is listed twice")
    src = "models" if v.has("models") else "mix"
    for n in names:
        try:
            profile.require_model(n)
        except UnknownNameError as exc:
            raise v.fail(src, str(exc)) from None
    return names


def _mix(v: Values, models: tuple[str, ...]) -> tuple[float, ...]:
    if not v.has("mix"):
        return tuple(1.0 for _ in models)
    pairs = _pairs(v, "mix")
    if all(val is None for _, val in pairs):  # positional weights: --mix 3,1
        if len(pairs) != len(models):
            raise v.fail("mix", f"{len(pairs)} weights for {len(models)} models "
                         f"({', '.join(models)})")
        weights = [_float_of(v, "mix", n) for n, _ in pairs]
    else:
        if any(val is None for _, val in pairs):
            raise v.fail("mix", "write every entry as model=weight")
        given = {n: _float_of(v, "mix", val) for n, val in pairs if val is not None}
        unknown = [n for n in given if n not in models]
        if unknown:
            raise v.fail("mix", f"model '{unknown[0]}' is not among the models "
                         f"({', '.join(models)})")
        missing = [m for m in models if m not in given]
        if missing:
            raise v.fail("mix", f"no weight for model '{missing[0]}'")
        weights = [given[m] for m in models]
    if sum(weights) <= 0:
        raise v.fail("mix", "weights must not all be 0")
    return tuple(weights)


def _hp(v: Values, models: tuple[str, ...]) -> tuple[float, tuple[float, ...] | None]:
    if v.has("hp_fraction") and v.has("hp_models"):
        raise v.fail("hp_models", f"give {v.label('hp_fraction')} or {v.label('hp_models')}, "
                     "not both")
    if v.has("hp_models"):
        fractions = dict.fromkeys(models, 0.0)
        for name, val in _pairs(v, "hp_models"):
            if name not in models:
                raise v.fail("hp_models", f"model '{name}' is not among the models "
                             f"({', '.join(models)})")
            fractions[name] = 1.0 if val is None else _float_of(v, "hp_models", val, hi=1.0)
        return 0.0, tuple(fractions[m] for m in models)
    frac = _number(v, "hp_fraction", lo=0.0, hi=1.0)
    return (DEFAULT_HP_FRACTION if frac is None else frac), None


def _per_class(v: Values, key: str) -> tuple[dict[int, float], bool]:
    """({class: value}, bare) where bare means one number for both classes."""
    raw = v.values.get(key)
    if raw is None:
        return {}, False
    pairs = _pairs(v, key)
    if len(pairs) == 1 and pairs[0][1] is None:
        x = _float_of(v, key, pairs[0][0], lo_open=True)
        return {HIGH: x, LOW: x}, True
    out: dict[int, float] = {}
    for name, val in pairs:
        if val is None:
            raise v.fail(key, f"write one number, or high=X,low=Y (got '{name}')")
        try:
            cls = priority_code(name)
        except ValueError:
            raise v.fail(key, f"class must be 'high' or 'low', got '{name}'") from None
        if cls in out:
            raise v.fail(key, f"class '{name}' given twice")
        out[cls] = _float_of(v, key, val, lo_open=True)
    return out, False


def _deadlines(v: Values) -> tuple[DeadlineRule, DeadlineRule]:
    slo, slo_bare = _per_class(v, "slo")
    ms, ms_bare = _per_class(v, "deadline_ms")
    if slo and ms and slo_bare and ms_bare:
        raise v.fail("deadline_ms", f"give {v.label('slo')} or {v.label('deadline_ms')} for "
                     "each class, not both (e.g. --slo 5 --deadline-ms high=20)")
    rules = []
    for cls in (HIGH, LOW):
        in_slo, in_ms = cls in slo, cls in ms
        if in_slo and in_ms:
            if not slo_bare and not ms_bare:
                raise v.fail("deadline_ms", f"class '{('high', 'low')[cls]}' has both an SLO "
                             "multiple and an absolute deadline")
            use_ms = slo_bare  # the class named explicitly wins over a bare number
        else:
            use_ms = in_ms
        if use_ms:
            rules.append(DeadlineRule("ms", ms[cls]))
        else:
            rules.append(DeadlineRule("slo", slo.get(cls, DEFAULT_SLO)))
    return rules[0], rules[1]


def _items(v: Values) -> ItemsDist:
    raw = v.values.get("items")
    if raw is None:
        return ItemsDist()

    def whole(text: str) -> int:
        try:
            x = float(text)
        except ValueError:
            raise v.fail("items", f"'{text}' is not a whole number") from None
        if not math.isfinite(x) or x != int(x) or x < 1 or x > 2**31 - 1:
            raise v.fail("items", f"'{text}' must be a whole number >= 1")
        return int(x)

    if isinstance(raw, str) and re.fullmatch(r"\s*\d+\s*-\s*\d+\s*", raw):
        lo_s, _, hi_s = raw.partition("-")
        lo, hi = whole(lo_s.strip()), whole(hi_s.strip())
        if hi < lo:
            raise v.fail("items", f"range '{raw}' ends before it starts")
        if hi - lo > 100_000:
            raise v.fail("items", f"range '{raw}' is too wide (at most 100000 values)")
        vals = tuple(range(lo, hi + 1))
        return ItemsDist(vals, tuple(1.0 for _ in vals))
    pairs = _pairs(v, "items")
    vals = tuple(whole(n) for n, _ in pairs)
    if len(set(vals)) != len(vals):
        raise v.fail("items", "a value is listed twice")
    if all(val is None for _, val in pairs):
        weights = tuple(1.0 for _ in vals)
    elif any(val is None for _, val in pairs):
        raise v.fail("items", "write a number, a range A-B, or value=weight entries")
    else:
        weights = tuple(_float_of(v, "items", val) for _, val in pairs if val is not None)
        if sum(weights) <= 0:
            raise v.fail("items", "weights must not all be 0")
    return ItemsDist(vals, weights)


def _window(v: Values) -> tuple[float, float | None] | None:
    raw = v.values.get("window")
    if raw is None:
        return None
    if isinstance(raw, list):
        if len(raw) != 2:
            raise v.fail("window", "give [start, end] in seconds")
        parts = ["" if x is None else str(x) for x in raw]
    elif isinstance(raw, str) and ":" in raw:
        parts = [p.strip() for p in raw.split(":", 1)]
    else:
        raise v.fail("window", f"write START:END in seconds (either may be empty), got {raw!r}")
    start = _float_of(v, "window", parts[0]) if parts[0] else 0.0
    end = _float_of(v, "window", parts[1]) if parts[1] else None
    if end is not None and end <= start:
        raise v.fail("window", f"end {end:g} must be after start {start:g}")
    return start, end


def _token_buckets(v: Values, n_models: int) -> tuple[float, ...] | None:
    if not v.has("token_buckets"):
        return None
    pairs = _pairs(v, "token_buckets")
    if any(val is not None for _, val in pairs):
        raise v.fail("token_buckets", "write increasing boundaries, e.g. 500,2000")
    bounds = tuple(_float_of(v, "token_buckets", n) for n, _ in pairs)
    if len(bounds) != n_models - 1:
        raise v.fail("token_buckets", f"{n_models} models need {n_models - 1} boundaries, "
                     f"got {len(bounds)}")
    if any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
        raise v.fail("token_buckets", "boundaries must increase")
    return bounds


def _capacity_batch(v: Values, max_batch: int) -> int | None:
    raw = v.values.get("capacity_batch")
    if raw is None:
        return None
    if isinstance(raw, str) and raw.strip() == "max":
        return int(max_batch)
    return int(_number(v, "capacity_batch", lo=1, integer=True))  # type: ignore[arg-type]


def _wrap(fn: Callable[[], Workload]) -> Workload:
    try:
        return fn()
    except ValueError as exc:
        raise UserError(f"workload: {exc}") from None


# -- building ---------------------------------------------------------------------------


def build_workload(opts: dict, profile: ProfileBundle, *, gpus: int = 1,
                   max_batch: int = 8) -> Workload:
    """The workload that ``opts`` (flag values, None where not given, plus ``config``)
    describes, validated against ``profile``."""
    v = merge_options(opts)
    if v.has("trace") and not v.has("workload"):
        v.set("workload", "trace", v.label("trace"))
    kind = _string(v, "workload", KINDS) or DEFAULT_KIND
    for key in KEYS:
        kinds = APPLIES[key]
        if v.has(key) and kinds is not None and kind not in kinds:
            raise v.fail(key, f"does not apply to workload '{kind}' (only to "
                         f"{', '.join(kinds)})")
    if kind == "trace" and not v.has("trace"):
        raise UserError(f"workload 'trace' needs {flag('trace')} PATH")
    if v.has("rate") and v.has("load"):
        raise v.fail("load", f"give {v.label('rate')} or {v.label('load')}, not both")
    if v.has("capacity_batch") and (v.has("rate") or (kind in TRACE_KINDS
                                                      and not v.has("load"))):
        raise v.fail("capacity_batch", f"only applies with {flag('load')}")
    if isinstance(gpus, bool) or int(gpus) != gpus or gpus < 1:
        raise UserError(f"--gpus must be a whole number >= 1, got {gpus}")
    check_capacity_batch(max_batch)
    if kind in TRACE_KINDS:
        return _build_trace(kind, v, profile, gpus, max_batch)
    duration = _number(v, "duration", lo=0.0, lo_open=True)
    duration = DEFAULT_DURATION_S if duration is None else duration
    max_requests = _number(v, "max_requests", lo=1, integer=True)
    attrs = _attributes(v, _models(v, profile))
    drawn = [n for n, w in zip(attrs.items.values, attrs.items.weights, strict=True) if w > 0]
    if max(drawn) > max_batch:  # else the first such request stops the run, if one comes
        raise v.fail("items", f"{max(drawn)} items is above --max-batch {max_batch}: a "
                     "request runs as one batch, so raise --max-batch or lower --items")
    if kind == "closed":
        clients = _number(v, "clients", lo=1, integer=True)
        think_ms = _number(v, "think_ms", lo=0.0)
        think_dist = _string(v, "think_dist", THINK_DISTS) or "exp"
        return _wrap(lambda: ClosedLoopWorkload(
            clients=DEFAULT_CLIENTS if clients is None else int(clients),
            think_s=(DEFAULT_THINK_MS if think_ms is None else think_ms) / 1e3,
            attrs=attrs, duration_s=duration, think_dist=think_dist,
            max_requests=None if max_requests is None else int(max_requests)))
    process = _process(kind, v, duration)
    load_record = None
    rate = _number(v, "rate", lo=0.0, lo_open=True)
    if rate is None:
        load = _number(v, "load", lo=0.0, lo_open=True)
        load = DEFAULT_LOAD if load is None else load
        cap = _capacity_batch(v, max_batch)
        work = mean_work_s(profile, attrs.models, attrs.probs, attrs.items.values,
                           attrs.items.probs, cap)
        per_unit_rate = process.expected_count(duration) / process.rate / duration
        try:
            rate = rate_for_load(load, int(gpus), work) / per_unit_rate
        except ValueError as exc:
            raise UserError(f"{v.label('load')}: {exc}") from None
        load_record = {"target": load, "gpus": int(gpus), "capacity_batch": cap,
                       "mean_work_ms": work * 1e3}
    return _wrap(lambda: GeneratedWorkload(
        process.with_rate(rate), attrs, duration,
        max_requests=None if max_requests is None else int(max_requests), load=load_record))


def _attributes(v: Values, models: tuple[str, ...]) -> RequestAttributes:
    weights = _mix(v, models)
    hp_fraction, hp_by_model = _hp(v, models)
    high, low = _deadlines(v)
    items = _items(v)
    try:
        return RequestAttributes(models, weights, hp_fraction, hp_by_model, high, low, items)
    except ValueError as exc:
        raise UserError(f"workload: {exc}") from None


def _process(kind: str, v: Values, duration: float) -> ArrivalProcess:
    placeholder = 1.0  # the rate is set afterwards (by --rate or --load)
    if kind == "poisson":
        return PoissonArrivals(placeholder)
    if kind == "gamma":
        cv = _number(v, "cv", lo=0.0)
        return GammaArrivals(placeholder, DEFAULT_CV if cv is None else cv)
    if kind == "mmpp":
        ratio = _number(v, "burst_ratio", lo=1.0)
        frac = _number(v, "burst_fraction", lo=0.0, lo_open=True, hi=1.0)
        if frac == 1.0:
            raise v.fail("burst_fraction", "must be < 1")
        burst_s = _number(v, "burst_s", lo=0.0, lo_open=True)
        return MMPPArrivals(placeholder, 10.0 if ratio is None else ratio,
                            0.1 if frac is None else frac, 1.0 if burst_s is None else burst_s)
    assert kind == "diurnal"
    amp = _number(v, "diurnal_amplitude", lo=0.0, hi=1.0)
    period = _number(v, "diurnal_period", lo=0.0, lo_open=True)
    phase = _number(v, "diurnal_phase")
    return DiurnalArrivals(placeholder, 0.5 if amp is None else amp,
                           duration if period is None else period,
                           0.0 if phase is None else phase)


def _trace_path(kind: str, v: Values) -> tuple[str, Path]:
    """(recorded path, file to read)."""
    if kind in PACKAGED_TRACES:
        return f"package:strait_sim.workloads/data/{PACKAGED_TRACES[kind]}", \
            packaged_trace_path(kind)
    raw = v.values["trace"]
    if not isinstance(raw, str) or not raw.strip():
        raise v.fail("trace", f"must be a file path, got {raw!r}")
    path = Path(raw.strip()).expanduser()
    if not path.is_absolute() and "trace" in v.base_dir:
        path = v.base_dir["trace"] / path  # relative to the experiment file
    return str(path.resolve()), path


def _build_trace(kind: str, v: Values, profile: ProfileBundle, gpus: int,
                 max_batch: int) -> Workload:
    recorded, path = _trace_path(kind, v)
    label = f"{PACKAGED_TRACES[kind]} (shipped)" if kind in PACKAGED_TRACES else str(path)
    reader = TraceReader(path, label=label)
    mapping = _string(v, "trace_map", MAPPINGS) or ("column" if reader.has_model
                                                     else "weighted")
    if mapping == "column" and not reader.has_model:
        raise v.fail("trace_map", f"{label} has no 'model' column; use weighted, "
                     "round-robin or tokens")
    if mapping == "tokens" and not reader.has_tokens:
        raise v.fail("trace_map", f"{label} has no token counts (a 'tokens' column, or "
                     "ContextTokens in an Azure trace)")
    if mapping != "tokens" and v.has("token_buckets"):
        raise v.fail("token_buckets", f"only applies with {flag('trace_map')} tokens")
    if mapping != "weighted" and v.has("mix"):
        raise v.fail("mix", f"only applies with {flag('trace_map')} weighted (this replay "
                     f"maps models by {mapping})")
    for key, present in (("hp_fraction", reader.has_priority), ("hp_models", reader.has_priority),
                         ("slo", reader.has_deadline), ("deadline_ms", reader.has_deadline),
                         ("items", reader.has_items)):
        if v.has(key) and present:
            raise v.fail(key, f"does not apply: {label} gives this in its own column")
    window = _window(v)
    scan = scan_trace(reader, window, keep_tokens=mapping == "tokens")
    if mapping == "column":
        models = _models(v, profile, fallback=tuple(scan.model_order))
        check_trace_models(scan, models, profile, label)
    else:
        models = _models(v, profile)
    attrs = _attributes(v, models)
    buckets = None
    if mapping == "tokens":
        buckets = _token_buckets(v, len(models)) or scan.quantile_buckets(len(models))
    duration = _number(v, "duration", lo=0.0, lo_open=True)
    max_requests = _number(v, "max_requests", lo=1, integer=True)
    rate_scale = _number(v, "rate_scale", lo=0.0, lo_open=True)
    rate_scale = 1.0 if rate_scale is None else rate_scale
    time_scale = _number(v, "time_scale", lo=0.0, lo_open=True)
    given = [k for k in ("rate", "load", "time_scale") if v.has(k)]
    if len(given) > 1:
        raise v.fail(given[1], f"give only one of {', '.join(flag(k) for k in given)}: each "
                     "sets the trace's time scale")
    assert scan.first_s is not None and scan.last_s is not None
    load_record = None
    sha256 = file_sha256(path)
    # Without a window the scan kept every row (times are >= 0), so its first row is the
    # file's: handed over, the workload need not read the file again for its origin.
    first_row = scan.first_s if window is None else None

    def make(ts: float, span: float | None) -> TraceWorkload:
        try:
            return TraceWorkload(kind, recorded, attrs, mapping=mapping, token_buckets=buckets,
                                 window=window, time_scale=ts, rate_scale=rate_scale,
                                 duration_s=duration,
                                 max_requests=None if max_requests is None
                                 else int(max_requests),
                                 sha256=sha256, rows=scan.rows, span_s=span,
                                 load=load_record, first_row_s=first_row)
        except ValueError as exc:
            raise UserError(f"workload: {exc}") from None

    # The replay's span in trace seconds, from its origin (the window's start, or the
    # first request of a trace used as given: the workload's own trace_origin_s, so
    # shifting the file changes neither the span nor the time scale chosen below) to the
    # window's end or the last request.
    end = window[1] if window is not None and window[1] is not None else scan.last_s
    span = end - make(1.0, None).trace_origin_s()

    if v.has("rate") or v.has("load"):
        key = "rate" if v.has("rate") else "load"
        if span <= 0:
            where = "the window holds" if window is not None else f"{label} has"
            raise v.fail(key, f"{where} requests at one instant only; its rate cannot be "
                         "scaled")
        if key == "rate":
            rate = _number(v, "rate", lo=0.0, lo_open=True)
            assert rate is not None
            time_scale = rate_scale * scan.rows / (rate * span)
        else:
            load = _number(v, "load", lo=0.0, lo_open=True)
            assert load is not None
            cap = _capacity_batch(v, max_batch)
            work = scan.mean_work_s(make(1.0, span), profile, cap)
            if not work > 0:
                raise v.fail("load", "the profile gives zero work per request")
            time_scale = rate_scale * scan.rows * work / (load * gpus * span)
            load_record = {"target": load, "gpus": int(gpus), "capacity_batch": cap,
                           "mean_work_ms": work * 1e3}
    return make(1.0 if time_scale is None else time_scale, span)


# -- rebuilding from a description ------------------------------------------------------


def workload_from_description(desc: dict) -> Workload:
    """Rebuild the workload whose ``describe()`` gave ``desc`` (e.g. from a run summary).

    For trace replays the file must still hold the same bytes (checked by sha256).
    """
    if not isinstance(desc, dict) or "kind" not in desc:
        raise UserError("workload description: must be an object with a 'kind'")
    kind = desc["kind"]
    try:
        if kind in PROCESSES:
            return GeneratedWorkload(process_from_description(kind, desc["arrivals"]),
                                     RequestAttributes.from_description(desc["requests"]),
                                     desc["duration_s"], max_requests=desc.get("max_requests"),
                                     load=desc.get("load"))
        if kind == "closed":
            return ClosedLoopWorkload(desc["clients"], desc["think_s"],
                                      RequestAttributes.from_description(desc["requests"]),
                                      desc["duration_s"], think_dist=desc["think_dist"],
                                      max_requests=desc.get("max_requests"))
        if kind in TRACE_KINDS:
            window = desc.get("window_s")
            wl = TraceWorkload(
                kind, desc["path"], RequestAttributes.from_description(desc["requests"]),
                mapping=desc["map"],
                token_buckets=None if desc.get("token_buckets") is None
                else tuple(desc["token_buckets"]),
                window=None if window is None else (window[0], window[1]),
                time_scale=desc["time_scale"], rate_scale=desc["rate_scale"],
                duration_s=desc.get("duration_s"), max_requests=desc.get("max_requests"),
                sha256=desc.get("sha256"), rows=desc.get("rows"), span_s=desc.get("span_s"),
                load=desc.get("load"))
            if kind == "trace" and not Path(wl.path).is_file():
                raise UserError(f"{wl.path}: trace file not found")
            wl.verify_file()
            return wl
        if kind == "poisson-basic":
            from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

            return BasicPoissonWorkload(tuple(desc["models"]), desc["rate"], desc["duration_s"],
                                        hp_fraction=desc["hp_fraction"], slo=desc["slo"],
                                        weights=tuple(desc["weights"]),
                                        max_requests=desc.get("max_requests"))
    except KeyError as exc:
        raise UserError(f"workload description ({kind}): missing key {exc}") from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"workload description ({kind}): {exc}") from None
    raise UserError(f"workload description: unknown kind '{kind}'; valid: "
                    f"{', '.join((*KINDS, 'poisson-basic'))}")
