"""Errors that reach the user as one clear line.

Anything the user can cause (a malformed file, an unknown name, a bad flag value, a missing
GPU) raises a subclass of :class:`UserError`. The CLI prints ``error: <message>`` and exits
with status 2; it never shows a traceback for these. Bugs stay ordinary exceptions.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class BundleError(UserError):
    """A profile bundle is missing, malformed or incomplete.

    The message names the file and, where it applies, the row (1-based, as an editor shows
    it, header = line 1) and the column.
    """

    def __init__(self, file: str, message: str, *, line: int | None = None,
                 column: str | None = None) -> None:
        where = file
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {message}")
        self.file = file
        self.line = line
        self.column = column


class UnknownNameError(UserError):
    """A name (policy, model, predictor, profile...) that is not registered."""

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...],
                 where: str = "") -> None:
        listed = ", ".join(sorted(valid)) if valid else "(none)"
        place = f" {where}" if where else ""
        super().__init__(f"unknown {kind} '{name}'{place}; valid: {listed}")
        self.kind = kind
        self.name = name
        self.valid = tuple(valid)


class NoDeviceError(UserError):
    """The requested accelerator is not present on this machine."""
