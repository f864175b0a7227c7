"""`distill report`: one self-contained HTML page about a run."""

from __future__ import annotations

from typing import Annotated

import typer

from distill.cli.common import not_built


def command(
    run: Annotated[str, typer.Argument(help="A run or corpus directory.")],
    out: Annotated[str, typer.Option(help="HTML file to write.")],
) -> None:
    """Write an HTML report with the funnel, lengths, pass rates and finish reasons."""
    not_built("report", 5)
