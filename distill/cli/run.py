"""`distill run RECIPE.yaml`: the whole pipeline in one resumable run directory."""

from __future__ import annotations

from typing import Annotated

import typer

from distill.cli.common import not_built


def command(recipe: Annotated[str, typer.Argument(help="A pipeline recipe, recipes/X.yaml.")]) -> None:
    """Run every stage of a recipe, skipping what is complete and resuming what is partial."""
    not_built("run", 8)
