"""Point specs: the fully resolved, JSON-able description of one simulated run.

A spec names everything a run depends on, with every default filled in, so that two specs
that would simulate the same thing are equal dicts and hash to the same point key::

    {"policy": "fifo", "policy_params": {}, "profile": "synthetic-tiny",
     "workload": {<every workload option name>: value},
     "gpus": 1, "slots": 2, "max_batch": 8, "seed": 0,
     "interference": true, "pcie": true}

The workload keys are the Python parameter names of
:data:`strait_sim.cli.workload_options.WORKLOAD_OPTIONS`, and their values are what the
flags would receive: a flag's default (mostly None, "not given", which the workload
builder turns into its documented default) unless the experiment sets it. The option list
is read at run time, so new workload flags work in sweeps without touching this module.
Writing a default value out explicitly gives a different key than leaving it out: such a
point is simulated once more, never wrongly reused.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any

from strait_sim.errors import UserError

# The simulated system's parameters and their defaults (those of `strait-sim run`).
SYSTEM_DEFAULTS: dict[str, Any] = {"gpus": 1, "slots": 2, "max_batch": 8, "seed": 0,
                                   "interference": True, "pcie": True}
SYSTEM_TYPES: dict[str, type] = {"gpus": int, "slots": int, "max_batch": int, "seed": int,
                                 "interference": bool, "pcie": bool}
# Workload options that name an input file even when typed as plain strings: the file's
# content goes into the point key, and a relative path is made absolute.
FILE_OPTIONS = ("trace", "config")
SPEC_KEYS = ("policy", "policy_params", "profile", "workload", *SYSTEM_DEFAULTS)


# Smallest value of each whole-number system parameter; seeds are numpy's (0 .. 2**32-1
# per word, any size), the rest are counts.
SYSTEM_MINIMA: dict[str, int] = {"gpus": 1, "slots": 1, "max_batch": 1, "nodes": 1,
                                 "seed": 0}
MAX_SEED = 2**63 - 1


def check_system_values(values: dict[str, Any], where: str = "", flags: bool = False) -> None:
    """One line for a system parameter out of range (``flags``: name it as ``--max-batch``),
    before any run: a negative seed would otherwise fail deep inside numpy."""
    for key, low in SYSTEM_MINIMA.items():
        value = values.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        name = "--" + key.replace("_", "-") if flags else key
        prefix = f"{where}: " if where else ""
        if value < low:
            raise UserError(f"{prefix}{name} must be at least {low}, got {value}")
        if key == "seed" and value > MAX_SEED:
            raise UserError(f"{prefix}{name} must be < 2**63, got {value}")


def workload_parameters() -> dict[str, inspect.Parameter]:
    """The workload options by parameter name (read fresh: the list grows over time)."""
    from strait_sim.cli.workload_options import WORKLOAD_OPTIONS

    return {p.name: p for p in WORKLOAD_OPTIONS}


def option_default(param: inspect.Parameter) -> Any:
    """The default value behind a ``typer.Option(...)`` parameter default."""
    default = getattr(param.default, "default", param.default)
    if default is ... or default is inspect.Parameter.empty:
        return None
    if isinstance(default, Path):
        return str(default)
    return default


def workload_defaults() -> dict[str, Any]:
    return {name: option_default(p) for name, p in workload_parameters().items()}


def base_types(annotation: Any) -> tuple[type, ...]:
    """The concrete types an option accepts: ``Optional[float]`` -> ``(float,)``."""
    if isinstance(annotation, str):  # postponed annotations: best effort
        annotation = {"str": str, "float": float, "int": int, "bool": bool}.get(annotation, str)
    args = typing.get_args(annotation)
    if args:
        return tuple(a for a in args if a is not type(None))
    return (annotation,)


def is_path_option(name: str) -> bool:
    """True for workload options that name a file (trace, config): their content matters."""
    param = workload_parameters().get(name)
    return param is not None and any(isinstance(t, type) and issubclass(t, Path)
                                     for t in base_types(param.annotation))


def check_value(value: Any, types: tuple[type, ...], where: str) -> Any:
    """Validate one scalar against the option's types; ints are fine for floats."""
    if value is None:
        return None
    for t in types:
        if t is bool:
            if isinstance(value, bool):
                return value
        elif t is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        elif t is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif isinstance(t, type) and issubclass(t, Path):
            if isinstance(value, str | Path):
                return str(Path(value).expanduser().resolve())
        elif t is str:
            if isinstance(value, str):
                return value
            if isinstance(value, int | float) and not isinstance(value, bool):
                return str(value)  # a flag's text: slo = 5 means --slo 5
        elif isinstance(value, str | int | float | bool):
            return value
    names = " or ".join(getattr(t, "__name__", str(t)) for t in types)
    raise UserError(f"{where}: expected {names}, got {type(value).__name__} {value!r}")


def resolve_spec(params: dict[str, Any], *, where: str = "spec") -> dict[str, Any]:
    """A fully resolved spec from flat or nested parameters.

    ``params`` may give workload options either flat (``{"rate": 100}``) or under
    ``"workload"``; missing values take their defaults. Unknown keys are an error.
    """
    wl_params = workload_parameters()
    workload = workload_defaults()
    spec: dict[str, Any] = {"policy": None, "policy_params": {}, "profile": None,
                            "workload": workload, **SYSTEM_DEFAULTS}
    for key, value in params.items():
        if key == "workload" and isinstance(value, dict):
            for wk, wv in value.items():
                _set_workload(workload, wl_params, wk, wv, where)
        elif key == "policy_params":
            if not isinstance(value, dict):
                raise UserError(f"{where}: policy_params must be a table of name = value")
            spec["policy_params"] = dict(sorted(value.items()))
        elif key == "profile" and value is None:
            continue  # the default profile, resolved below
        elif key in ("policy", "profile"):
            if not isinstance(value, str):
                raise UserError(f"{where}: {key} must be a string, got {value!r}")
            spec[key] = value
        elif key in SYSTEM_TYPES:
            spec[key] = check_value(value, (SYSTEM_TYPES[key],), f"{where}: {key}")
        elif key in wl_params:
            _set_workload(workload, wl_params, key, value, where)
        else:
            raise UserError(f"{where}: unknown parameter '{key}'")
    if spec["policy"] is None:
        raise UserError(f"{where}: no policy given")
    check_system_values({"seed": spec["seed"]}, where)  # the rest: SimConfig checks them
    if spec["profile"] is None:
        from strait_sim.profile_registry import default_profile_name

        spec["profile"] = default_profile_name()
    spec["profile"] = _absolute_if_path(spec["profile"])
    return spec


def _set_workload(workload: dict, wl_params: dict, key: str, value: Any, where: str) -> None:
    if key not in wl_params:
        raise UserError(f"{where}: unknown workload parameter '{key}'")
    value = check_value(value, base_types(wl_params[key].annotation), f"{where}: {key}")
    if key in FILE_OPTIONS and isinstance(value, str) and Path(value).expanduser().is_file():
        value = str(Path(value).expanduser().resolve())
    workload[key] = value


def _absolute_if_path(profile: str) -> str:
    """A profile given as a folder becomes absolute, so workers elsewhere find it too."""
    path = Path(profile).expanduser()
    if path.is_dir():
        return str(path.resolve())
    return profile
