"""``strait-sim profiles``: list the bundled profile bundles."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("profiles")
    def profiles() -> None:
        """List bundled profiles (use the name, or any bundle folder, with --profile)."""
        from rich.console import Console
        from rich.table import Table

        from strait_sim.profile_registry import bundled_profiles, default_profile_name

        try:
            default = default_profile_name()
        except Exception:
            default = ""
        table = Table(title="Bundled profiles")
        for col in ("name", "device", "kind", "note"):
            table.add_column(col)
        for p in bundled_profiles():
            tag = "synthetic test fixture" if p.synthetic else "measured"
            if p.name == default:
                tag += ", default"
            table.add_row(p.name, p.device, p.kind, tag)
        Console().print(table)
