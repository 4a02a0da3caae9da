"""``strait-sim policies``: one line per registered policy."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("policies")
    def policies() -> None:
        """List scheduling policies (built-in and from installed plugins)."""
        from strait_sim.policies.registry import describe_policies

        rows = describe_policies()
        width = max(len(n) for n, _ in rows)
        for name, summary in rows:
            typer.echo(f"{name:<{width}}  {summary}")
