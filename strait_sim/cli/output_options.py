"""The ``--overwrite`` flag, one definition for every command that writes a result.

The rule it switches is in :mod:`strait_sim.output_folder`: without the flag an earlier
result is never replaced; with it, it is replaced atomically, and files strait-sim did not
write are still never deleted.
"""

from __future__ import annotations

import typer

OVERWRITE_HELP = ("Replace an earlier result of the same kind in the output (files "
                  "strait-sim did not write are never deleted).")


def overwrite_option() -> bool:
    return typer.Option(False, "--overwrite", help=OVERWRITE_HELP)  # type: ignore[return-value]
