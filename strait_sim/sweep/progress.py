"""A rich progress bar over grid points: done/total, points per second, time remaining."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Points per second (per minute when slower), from rich's moving speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("-- pt/s", style="progress.data.speed")
        if speed < 1:
            return Text(f"{speed * 60:.1f} pt/min", style="progress.data.speed")
        return Text(f"{speed:.2f} pt/s", style="progress.data.speed")


@contextlib.contextmanager
def point_progress(total: int, *, skipped: int = 0, enabled: bool = True
                   ) -> Iterator[Callable[[bool], None]]:
    """Yield ``advance(failed)``, called once per finished point."""
    if not enabled or total == 0:
        yield lambda failed: None
        return
    columns = [TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
               TextColumn("{task.fields[note]}")]
    note = f"({skipped} already done)" if skipped else ""
    failures = 0
    with Progress(*columns) as bar:
        task = bar.add_task("sweep", total=total, note=note)

        def advance(failed: bool) -> None:
            nonlocal failures
            failures += failed
            extra = f"[red]{failures} failed[/red] " if failures else ""
            bar.update(task, advance=1, note=extra + note)

        yield advance
