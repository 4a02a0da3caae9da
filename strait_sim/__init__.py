"""strait-sim: priority- and interference-aware DNN inference scheduling on shared GPUs.

Three parts share one set of policy objects: a profiler that measures a real device into a
profile bundle, a SimPy simulator calibrated by that bundle, and a live executor that runs
the same policies on the device so the simulator can be checked against reality.

From Python (the same runs as the CLI; see :mod:`strait_sim.api`)::

    >>> import strait_sim
    >>> result = strait_sim.simulate(policy="fifo", profile="synthetic-tiny", duration=2)
    >>> result.summary["policy"]
    'fifo'

The API's names are imported on first use, so ``import strait_sim`` (and the CLI's start)
stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = ("load_profile", "make_policy", "policy_names", "describe_workload", "simulate",
        "compare", "validate", "report", "load_run", "Comparison")
__all__ = ["__version__", *_API]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load lazily
    from strait_sim.api import (  # noqa: F401
        Comparison,
        compare,
        describe_workload,
        load_profile,
        load_run,
        make_policy,
        policy_names,
        report,
        simulate,
        validate,
    )


def __getattr__(name: str) -> Any:
    if name in _API:
        from strait_sim import api

        return getattr(api, name)
    raise AttributeError(f"module 'strait_sim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
