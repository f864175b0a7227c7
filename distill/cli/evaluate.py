"""`distill eval` and `distill compare`: R1's evaluation protocol and a comparison table."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from distill.cli.common import not_built


def eval_command(
    bench: Annotated[str, typer.Option(help="Comma-separated shipped benchmarks or paths.")],
    out: Annotated[str, typer.Option(help="Output directory.")],
    model: Annotated[Optional[str], typer.Option(help="A local checkpoint.")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="A teacher profile, teachers/X.yaml.")] = None,
    k: Annotated[int, typer.Option(help="Samples per problem.")] = 4,
) -> None:
    """Evaluate a model with pass@1 over k samples, pass@k and cons@k."""
    not_built("eval", 7)


def compare_command(
    runs: Annotated[list[str], typer.Argument(help="Evaluation directories.")],
    out: Annotated[Optional[str], typer.Option(help="Markdown file for the table.")] = None,
) -> None:
    """Print a table comparing several evaluations."""
    not_built("compare", 7)
