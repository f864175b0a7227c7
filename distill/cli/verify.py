"""`distill verify`: judge every sample (math, code, choice, exact)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from distill.cli.common import not_built


def command(
    run: Annotated[str, typer.Argument(help="A run directory or a samples JSONL file.")],
    problems: Annotated[Optional[str], typer.Option(help="Problem set (defaults to the run's manifest).")] = None,
    out: Annotated[Optional[str], typer.Option(help="Where to write verified samples.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (default: all cores).")] = None,
) -> None:
    """Verify samples against their problems' references."""
    not_built("verify", 4)
