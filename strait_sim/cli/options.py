"""Sharing one group of CLI flags between several typer commands.

``run``, ``compare``, ``validate`` and ``workload generate`` all take the same workload
flags. Rather than repeat forty parameters in four signatures, a group is declared once as
a list of :class:`inspect.Parameter` (each with its ``typer.Option`` default) and
:func:`with_option_group` splices them into a command's signature; the wrapper collects
their values into one dict passed as a single keyword argument.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any


def with_option_group(group: list[inspect.Parameter], dest: str) -> Callable:
    """Decorate a command so that the parameters of ``group`` arrive as ``dest=dict``."""
    names = [p.name for p in group]

    def decorate(func: Callable) -> Callable:
        sig = inspect.signature(func)
        hints = typing.get_type_hints(func)  # resolve string annotations in func's module
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in sig.parameters.values() if p.name != dest]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs[dest] = {n: kwargs.pop(n) for n in names if n in kwargs}
            return func(*args, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=own + [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in group])  # type: ignore[attr-defined]
        del wrapper.__wrapped__  # typer must read __signature__, not the original
        wrapper.__annotations__ = {p.name: p.annotation for p in own + group}
        return wrapper

    return decorate


def option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    """One parameter of a group: ``default`` is a ``typer.Option(...)``."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)
