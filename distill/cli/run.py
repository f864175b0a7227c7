"""`distill run RECIPE.yaml|NAME`: the whole pipeline in one resumable run directory."""

from __future__ import annotations

from typing import Annotated

import typer

from distill.pipeline import load_recipe, run_pipeline


def command(
    recipe: Annotated[str, typer.Argument(help="A pipeline recipe: a shipped name (quickstart) or recipes/X.yaml.")],
    run_dir: Annotated[str | None, typer.Option(help="The run directory (default: the recipe's, else runs/NAME).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: GROUP.KEY=VALUE, or "
                                                   "filters.GROUP.KEY=VALUE / student.KEY=VALUE for the filter config "
                                                   "and the student recipe (repeatable).")] = None,
) -> None:
    """Run every stage of a recipe, skipping what is complete and resuming what is partial."""
    result = run_pipeline(load_recipe(recipe, run_dir, set_))
    if result["skipped"]:
        typer.echo(f"skipped (complete): {', '.join(result['skipped'])}")
    typer.echo(result["table"])
    typer.echo(result["paired"])
    typer.echo(f"run directory: {result['run_dir']} (table in results.md)")
