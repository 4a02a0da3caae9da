"""``strait-sim report DIR``: one self-contained HTML page for a result folder."""

from __future__ import annotations

from pathlib import Path

import typer

from strait_sim.cli.output_options import overwrite_option


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        folder: Path = typer.Argument(..., help="A run (--out of run), comparison (--out "
                                      "of compare), validation or validation study (--out "
                                      "of validate) folder."),
        html: Path | None = typer.Option(None, "--html", help="Where to write the page "
                                         "[default: DIR/report.html]."),
        overwrite: bool = overwrite_option(),
    ) -> None:
        """Write one self-contained HTML page (tables, figures, the producing command and
        the profile's provenance) for a run, a comparison, a validation or a study."""
        from strait_sim.html_report import write_html_report
        from strait_sim.output_folder import check_report_target

        check_report_target(folder, html, overwrite=overwrite)
        path = write_html_report(folder, html)
        typer.echo(f"report: {path}")
