"""``strait-sim policies``: one line per registered policy."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("policies")
    def policies() -> None:
        """List scheduling policies (built-in and from installed plugins)."""
        import shutil
        import textwrap

        from strait_sim.policies.registry import describe_policies

        rows = describe_policies()
        width = max(len(n) for n, _ in rows)
        columns = max(shutil.get_terminal_size((80, 24)).columns, width + 30)
        for name, summary in rows:  # wrapped to the terminal, continuation lines indented
            typer.echo(textwrap.fill(summary, columns - 1,
                                     initial_indent=f"{name:<{width}}  ",
                                     subsequent_indent=" " * (width + 2)))
