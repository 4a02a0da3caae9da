"""A rich progress bar for long simulations (requests ended, rate, time remaining)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from strait_sim.workloads.base import Workload


@contextlib.contextmanager
def sim_progress(workload: Workload, *, enabled: bool = True
                 ) -> Iterator[Callable[[int, float], None] | None]:
    """Yield a ``progress(ended, sim_now)`` callback, or None when disabled."""
    if not enabled:
        yield None
        return
    total = workload.expected_count()
    columns = [TextColumn("simulating"), BarColumn(), MofNCompleteColumn(),
               TextColumn("sim t={task.fields[now]:.1f}s"), TimeRemainingColumn()]
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("sim", total=total, now=0.0)

        def update(ended: int, now: float) -> None:
            bar.update(task, completed=ended, now=now)

        yield update
