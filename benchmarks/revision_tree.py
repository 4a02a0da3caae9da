"""Import strait_sim from another checkout (a worktree of an older commit), for benchmarks
that compare two revisions' code on the same input.

Why not only ``sys.path``: the installed (editable) package maps ``strait_sim.policies``,
``.workloads`` and ``.profiler`` to the main checkout's folders, so those three are loaded
from the checkout's own folders explicitly.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def use_tree(root: Path) -> None:
    """Import strait_sim (and its policies/workloads/profiler folders) from ``root``."""
    sys.path.insert(0, str(root))
    import strait_sim

    for sub in ("policies", "workloads", "profiler"):
        spec = importlib.util.spec_from_file_location(
            f"strait_sim.{sub}", root / sub / "__init__.py",
            submodule_search_locations=[str(root / sub)])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[f"strait_sim.{sub}"] = mod
        spec.loader.exec_module(mod)
        setattr(strait_sim, sub, mod)
    if not Path(strait_sim.__file__).is_relative_to(root):
        sys.exit(f"could not import strait_sim from {root}")
