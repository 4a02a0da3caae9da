"""The experiment file (TOML): which grid to run, which metrics to show, where to write.

::

    [experiment]
    name = "load-sweep"
    out = "runs/load-sweep"          # relative paths: relative to this file's folder
    profile = "synthetic-tiny"       # or in [fixed]/[grid]; a name or a bundle folder
    metrics = ["violation_rate", "p99_ms"]
    keep_requests = true             # per-request Parquet in every point folder

    [grid]                           # every combination of these lists is one point
    policy = ["fifo", "edf", "priority"]
    load = [0.5, 0.7, 0.9]
    seed = [0, 1, 2]
    policy_params.alpha = [0.9, 0.99]   # passed to every policy of the grid

    [fixed]                          # one value each
    workload = "poisson"
    duration = 30
    slots = 2

Keys of [grid] and [fixed]: ``policy``, ``profile``, any workload option (the Python names
of the ``strait-sim run`` workload flags: ``hp_fraction`` for ``--hp-fraction``), the
system parameters ``gpus slots max_batch seed interference pcie``, and
``policy_params.<name>``. Everything is checked before anything runs; each problem is one
:class:`~strait_sim.errors.UserError` line naming the file and the key.
"""

from __future__ import annotations

import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strait_sim.errors import UserError
from strait_sim.sweep.spec import (
    FILE_OPTIONS,
    SYSTEM_DEFAULTS,
    is_path_option,
    resolve_spec,
    workload_parameters,
)

SECTIONS = ("experiment", "grid", "fixed")
EXPERIMENT_KEYS = ("name", "out", "profile", "metrics", "keep_requests", "description")
CLASS_METRICS = ("violation_rate", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms",
                 "goodput_rps", "count", "completed", "on_time", "late", "dropped",
                 "rejected", "failed")
POINT_METRICS = ("jain_fairness", "gpu_busy_fraction")
METRICS = CLASS_METRICS + POINT_METRICS
DEFAULT_METRICS = ("violation_rate", "p99_ms", "goodput_rps")


@dataclass
class Experiment:
    """A validated experiment: its settings and every point's resolved spec."""

    source: Path
    name: str
    out: Path
    metrics: list[str]
    keep_requests: bool
    grid_keys: list[str]  # varied parameters, in file order ("policy_params.x" for those)
    specs: list[dict] = field(default_factory=list)
    text: str = ""


def load_experiment(path: Path | str) -> Experiment:
    """Read, validate and expand an experiment file."""
    path = Path(path)
    label = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{label}: experiment file not found") from None
    except OSError as exc:
        raise UserError(f"{label}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{label}: not a text file") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{label}: not valid TOML: {exc}") from None
    return parse_experiment(doc, source=path, text=text)


def parse_experiment(doc: dict, *, source: Path, text: str = "") -> Experiment:
    label = str(source)
    base = source.resolve().parent
    for section in doc:
        if section not in SECTIONS:
            raise UserError(f"{label}: unknown section [{section}]; valid: "
                            f"{', '.join(f'[{s}]' for s in SECTIONS)}")
        if not isinstance(doc[section], dict):
            raise UserError(f"{label}: '{section}' must be a table [{section}]")
    exp = doc.get("experiment", {})
    for key in exp:
        if key not in EXPERIMENT_KEYS:
            raise UserError(f"{label}: [experiment] unknown key '{key}'; valid: "
                            f"{', '.join(EXPERIMENT_KEYS)}")
    name = _typed(exp, "name", str, label, source.stem)
    out_text = _typed(exp, "out", str, label, None)
    out = _relative_to(base, out_text) if out_text else base / "runs" / name
    keep = _typed(exp, "keep_requests", bool, label, True)
    _typed(exp, "description", str, label, "")
    metrics = exp.get("metrics", list(DEFAULT_METRICS))
    if not (isinstance(metrics, list) and metrics and all(isinstance(m, str) for m in metrics)):
        raise UserError(f"{label}: [experiment] metrics must be a non-empty list of names")
    for m in metrics:
        if m not in METRICS:
            raise UserError(f"{label}: [experiment] metrics: unknown metric '{m}'; valid: "
                            f"{', '.join(METRICS)}")

    grid = _flatten(doc.get("grid", {}), "grid", label)
    fixed = _flatten(doc.get("fixed", {}), "fixed", label)
    if "profile" in exp:
        if "profile" in grid or "profile" in fixed:
            raise UserError(f"{label}: profile is given in [experiment] and in "
                            f"[{'grid' if 'profile' in grid else 'fixed'}]; give it once")
        fixed["profile"] = _typed(exp, "profile", str, label, None)
    _check_keys(grid, fixed, label)
    for key, values in grid.items():
        if not isinstance(values, list):
            grid[key] = values = [values]  # a single value is a one-point axis
        if not values:
            raise UserError(f"{label}: [grid] {key} must be a non-empty list of values")
        for i, v in enumerate(values):
            if isinstance(v, list | dict):
                raise UserError(f"{label}: [grid] {key}: values must be single values, "
                                f"got {v!r}")
            if v in values[:i]:
                raise UserError(f"{label}: [grid] {key} lists {v!r} twice")
    for key, value in fixed.items():
        if isinstance(value, list | dict):
            raise UserError(f"{label}: [fixed] {key} is a list; lists belong in [grid]")
    if "policy" not in grid and "policy" not in fixed:
        raise UserError(f"{label}: no policy: set policy in [grid] or [fixed]")
    grid = {k: [_localise(k, v, base) for v in vs] for k, vs in grid.items()}
    fixed = {k: _localise(k, v, base) for k, v in fixed.items()}

    specs = [_spec(dict(fixed) | dict(zip(grid, combo, strict=True)), grid, label)
             for combo in itertools.product(*grid.values())]
    _validate_names(specs, grid, fixed, label)
    return Experiment(source=source, name=name, out=out, metrics=list(metrics),
                      keep_requests=keep, grid_keys=list(grid), specs=specs, text=text)


def _typed(table: dict, key: str, kind: type, label: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, kind):
        raise UserError(f"{label}: [experiment] {key} must be a {kind.__name__}, "
                        f"got {value!r}")
    return value


def _relative_to(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _flatten(table: dict, section: str, label: str) -> dict:
    """``policy_params = {alpha = [..]}`` -> ``{"policy_params.alpha": [..]}``."""
    out = {}
    for key, value in table.items():
        if key == "policy_params":
            if not isinstance(value, dict):
                raise UserError(f"{label}: [{section}] policy_params must be a table "
                                f"(policy_params.<name> = ...)")
            for pk, pv in value.items():
                out[f"policy_params.{pk}"] = pv
        else:
            out[key] = value
    return out


def _check_keys(grid: dict, fixed: dict, label: str) -> None:
    valid = {"policy", "profile", *SYSTEM_DEFAULTS, *workload_parameters()}
    for section, table in (("grid", grid), ("fixed", fixed)):
        for key in table:
            if key not in valid and not key.startswith("policy_params."):
                raise UserError(f"{label}: [{section}] unknown key '{key}'; valid: "
                                f"{', '.join(sorted(valid))}, policy_params.<name>")
    for key in grid:
        if key in fixed:
            raise UserError(f"{label}: '{key}' is in both [grid] and [fixed]; keep one")


def _localise(key: str, value: Any, base: Path) -> Any:
    """Paths in the file are relative to the file's folder."""
    if not isinstance(value, str):
        return value
    if key == "profile":
        candidate = _relative_to(base, value)
        return str(candidate.resolve()) if candidate.is_dir() else value
    if key in FILE_OPTIONS or is_path_option(key):
        return str(_relative_to(base, value).resolve())
    return value


def _spec(params: dict, grid: dict, label: str) -> dict:
    flat = {k: v for k, v in params.items() if not k.startswith("policy_params.")}
    flat["policy_params"] = {k.split(".", 1)[1]: v for k, v in params.items()
                             if k.startswith("policy_params.")}
    return resolve_spec(flat, where=label)


def _seen_key(obj: Any) -> str:
    """A text per value, to check each distinct policy or workload once.

    Not :func:`~strait_sim.sweep.points.canonical_json`: that one refuses nan and inf
    (a point's hash must be valid JSON), and these keys are made before the checks that
    turn such a value into a line naming the key.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _validate_names(specs: list[dict], grid: dict, fixed: dict, label: str) -> None:
    """Unknown policies, profiles, bad policy or workload values: fail before running."""
    from strait_sim.cli.workload_options import workload_from_options
    from strait_sim.policies.registry import make_policy, policy_names
    from strait_sim.sweep.points import load_profile

    section = {k: "grid" for k in grid} | {k: "fixed" for k in fixed}
    names = policy_names()
    bundles = {}
    for profile in sorted({s["profile"] for s in specs}):
        try:
            bundles[profile] = load_profile(profile)
        except UserError as exc:
            raise UserError(f"{label}: [{section.get('profile', 'fixed')}] profile: {exc}"
                            ) from None
    from strait_sim.engine.simulator import SimConfig

    for shape in sorted({(s["gpus"], s["slots"], s["max_batch"]) for s in specs}):
        try:
            SimConfig(gpus=shape[0], slots=shape[1], max_batch=shape[2])
        except UserError as exc:
            raise UserError(f"{label}: {exc}") from None
    seen_policies: set[str] = set()
    seen_workloads: set[str] = set()
    for spec in specs:
        if spec["policy"] not in names:
            raise UserError(f"{label}: [{section['policy']}] policy: unknown policy "
                            f"'{spec['policy']}'; valid: {', '.join(names)}")
        pkey = _seen_key([spec["policy"], spec["policy_params"], spec["slots"]])
        if pkey not in seen_policies:
            seen_policies.add(pkey)
            try:
                make_policy(spec["policy"], **spec["policy_params"]).check_system(
                    slots=spec["slots"])
            except UserError as exc:
                where = ", ".join(f"[{section[f'policy_params.{p}']}] policy_params.{p}"
                                  for p in spec["policy_params"]) or f"[{section['policy']}]"
                raise UserError(f"{label}: {where}: {exc}") from None
        wkey = _seen_key([spec["profile"], spec["workload"], spec["gpus"],
                               spec["max_batch"]])
        if wkey not in seen_workloads:
            seen_workloads.add(wkey)
            try:
                workload_from_options(dict(spec["workload"]), bundles[spec["profile"]],
                                      gpus=spec["gpus"], max_batch=spec["max_batch"])
            except UserError as exc:
                raise UserError(f"{label}: workload: {exc}") from None
