"""Find policies by name: built-ins plus third-party ones from an entry-point group.

A package adds a policy by declaring, in its own pyproject.toml::

    [project.entry-points."strait_sim.policies"]
    mypolicy = "mypackage.mymodule:MyPolicy"

Built-ins are listed here as import paths and loaded lazily, so `strait-sim policies`
stays fast and a policy's heavy imports (a predictor library) cost nothing until used.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import typing
from importlib.metadata import entry_points

from strait_sim.errors import UnknownNameError, UserError
from strait_sim.policies.base import Policy

ENTRY_POINT_GROUP = "strait_sim.policies"

BUILTIN: dict[str, str] = {
    "fifo": "strait_sim.policies.fifo:FifoPolicy",
    "edf": "strait_sim.policies.edf:EdfPolicy",
    "priority": "strait_sim.policies.priority:PriorityPolicy",
    "strait": "strait_sim.policies.strait:StraitPolicy",
    "triton": "strait_sim.policies.triton:TritonPolicy",
    "clockwork": "strait_sim.policies.clockwork:ClockworkPolicy",
    "gpulet": "strait_sim.policies.gpulet:GpuletPolicy",
    "reef": "strait_sim.policies.reef:ReefPolicy",
    "orion": "strait_sim.policies.orion:OrionPolicy",
}


def _load(target: str) -> type[Policy]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _entry_point_targets() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def policy_names() -> list[str]:
    return sorted(set(BUILTIN) | set(_entry_point_targets()))


def policy_class(name: str) -> type[Policy]:
    """The class registered under ``name`` (built-ins win over entry points)."""
    if name in BUILTIN:
        return _load(BUILTIN[name])
    eps = _entry_point_targets()
    if name in eps:
        cls = eps[name].load()  # type: ignore[attr-defined]
        if not (isinstance(cls, type) and issubclass(cls, Policy)):
            raise UserError(f"entry point '{name}' in {ENTRY_POINT_GROUP} is not a Policy class")
        return cls
    raise UnknownNameError("policy", name, policy_names())


def policy_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters a policy class takes (its ``__init__``'s), by name."""
    if cls.__init__ is object.__init__:
        return {}
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return {}
    return {n: p for n, p in sig.parameters.items() if n != "self"
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _check_params(name: str, cls: type, params: dict) -> None:
    """Unknown names and values of the wrong type, in one line that lists the valid names.

    The type is that of the parameter's default: a ``True`` default takes only true/false
    (``hp_guard=7`` is not a boolean), a number default takes only numbers. A class that
    takes ``**kwargs`` is trusted with any name.
    """
    accepted = policy_parameters(cls)
    open_ended = False
    if cls.__init__ is not object.__init__:
        with contextlib.suppress(TypeError, ValueError):
            open_ended = any(p.kind is p.VAR_KEYWORD
                             for p in inspect.signature(cls.__init__).parameters.values())
    for key, value in params.items():
        if key not in accepted:
            if open_ended:
                continue
            valid = ", ".join(sorted(accepted)) or "(none: it takes no parameters)"
            raise UserError(f"policy '{name}' has no parameter '{key}'; valid: {valid}")
        default = accepted[key].default
        if value is None and _accepts_none(accepted[key]):
            continue  # "not set": reef's pad_slowdown=None lifts the bound
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise UserError(f"policy '{name}': {key} must be true or false, got {value!r}")
        elif isinstance(default, int | float) and default is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UserError(f"policy '{name}': {key} must be a number, got {value!r}")
        elif isinstance(default, str) and not isinstance(value, str):
            raise UserError(f"policy '{name}': {key} must be a name (text), got {value!r}")


def _accepts_none(param: inspect.Parameter) -> bool:
    """True where the parameter's annotation admits None (``float | None``), written as
    text (postponed annotations, the usual case here) or as a type."""
    ann = param.annotation
    if isinstance(ann, str):
        text = ann.replace(" ", "")
        return "None" in text.split("|") or text.startswith(("Optional[", "typing.Optional["))
    return type(None) in typing.get_args(ann)


def make_policy(name: str, **params: object) -> Policy:
    """Construct a policy; a bad parameter becomes a one-line user error."""
    cls = policy_class(name)
    _check_params(name, cls, params)
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise UserError(f"policy '{name}': {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_policies() -> list[tuple[str, str]]:
    """(name, one-line summary) for every registered policy."""
    out = []
    for name in policy_names():
        try:
            out.append((name, policy_class(name).summary or "(no summary)"))
        except Exception as exc:  # a broken third-party plugin must not hide the others
            out.append((name, f"(failed to load: {exc})"))
    return out
