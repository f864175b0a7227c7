"""`distill report`: one self-contained HTML page about a run."""

from __future__ import annotations

from typing import Annotated

import typer

from distill.report import write_report


def command(
    run: Annotated[str, typer.Argument(help="A corpus directory (with funnel.json) or a run directory holding one.")],
    out: Annotated[str, typer.Option(help="HTML file to write.")],
) -> None:
    """Write an HTML report with the funnel, lengths, pass rates and finish reasons."""
    path = write_report(run, out)
    typer.echo(f"wrote {path}")
