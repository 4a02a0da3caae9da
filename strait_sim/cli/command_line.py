"""The command that reproduces a run, written next to its results (``command.txt``)."""

from __future__ import annotations

import shlex
from typing import Any


def command_line(ctx: Any) -> str:
    """Every option given a non-default value, rebuilt from the parsed parameters rather
    than ``sys.argv``, so that it is right however the CLI was entered (console script,
    ``python -m``, ``main([...])`` in tests)."""
    words = ["strait-sim"]
    parent = ctx.parent
    while parent is not None and parent.info_name and parent.parent is not None:
        words.insert(1, parent.info_name)
        parent = parent.parent
    words.append(ctx.info_name or "")
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        opts = getattr(param, "opts", None)
        if not opts or value is None:
            continue
        if not opts[0].startswith("-"):  # an argument
            words.append(str(value))
            continue
        if value == param.default and param.name != "policy":
            continue
        if getattr(param, "is_flag", False):
            if value:
                words.append(opts[0])
        elif isinstance(value, list | tuple):
            if list(value) == list(param.default or []):
                continue
            for item in value:
                words += [opts[0], str(item)]
        else:
            words += [opts[0], str(value)]
    return shlex.join(words)
