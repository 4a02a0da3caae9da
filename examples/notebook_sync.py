"""Keep ``compare_policies.ipynb`` the same as ``compare_policies.py``.

The script is the source: ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown
cell. ``python examples/notebook_sync.py`` rewrites the notebook from it, without outputs
(outputs are made by running it, never stored in git); the test suite checks that the two
agree and executes the notebook.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "compare_policies.py"
NOTEBOOK = HERE / "compare_policies.ipynb"


def script_cells(text: str) -> list[tuple[str, str]]:
    """(kind, source) of each cell of a ``# %%`` script."""
    cells = []
    for chunk in re.split(r"^# %%", text, flags=re.M)[1:]:
        head, _, body = chunk.partition("\n")
        if head.strip() == "[markdown]":
            lines = [line[2:] if line.startswith("# ") else line.lstrip("#")
                     for line in body.strip().splitlines()]
            cells.append(("markdown", "\n".join(lines)))
        else:
            cells.append(("code", body.strip()))
    return cells


def build_notebook(text: str):  # type: ignore[no-untyped-def]
    """The notebook of a script: its cells, no outputs, fixed cell ids (same bytes)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                  "language": "python"},
                   "language_info": {"name": "python"}}
    new = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    nb.cells = [new[kind](source) for kind, source in script_cells(text)]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    return nb


def notebook_text(text: str) -> str:
    import nbformat

    return nbformat.writes(build_notebook(text)) + "\n"


if __name__ == "__main__":
    NOTEBOOK.write_text(notebook_text(SCRIPT.read_text()))
    print(f"wrote {NOTEBOOK}", file=sys.stderr)
