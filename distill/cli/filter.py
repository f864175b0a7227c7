"""`distill filter` and `distill import`: turn verified samples into a training corpus."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from distill.cli.common import not_built


def command(
    run: Annotated[str, typer.Argument(help="A run directory or a verified samples JSONL file.")],
    out: Annotated[str, typer.Option(help="Corpus directory.")],
    problems: Annotated[Optional[str], typer.Option(help="Problem set (defaults to the run's manifest).")] = None,
    config: Annotated[Optional[str], typer.Option(help="Filter config YAML.")] = None,
) -> None:
    """Filter and select samples into corpus.jsonl, rejected.jsonl, funnel.json and a dataset card."""
    not_built("filter", 5)


def import_command(
    path: Annotated[str, typer.Argument(help="A trace dataset: JSONL, Parquet or a datasets directory.")],
    out: Annotated[str, typer.Option(help="Run directory to create.")],
    map_: Annotated[Optional[list[str]], typer.Option("--map", help="FIELD=COLUMN.")] = None,
) -> None:
    """Import an existing trace dataset as samples and problems."""
    not_built("import", 5)
