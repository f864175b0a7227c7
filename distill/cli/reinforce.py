"""`distill reinforce`: GRPO with the verifiers as rewards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distill.errors import ConfigError
from distill.paths import find
from distill.reinforce import reinforce

DEFAULT_RECIPE = "r1"


def command(
    student: Annotated[str, typer.Option(help="A GRPO recipe (a shipped name or students/rl/X.yaml) or a checkpoint "
                                              "to reinforce.")],
    out: Annotated[str, typer.Option(help="Output directory (final model, checkpoints, metrics.jsonl).")],
    problems: Annotated[str | None, typer.Option(help="A shipped set name or a problem file (else the recipe's).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after S steps.")] = None,
    recipe: Annotated[
        str | None, typer.Option(help=f"The GRPO recipe when --student is a checkpoint (default {DEFAULT_RECIPE}).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Train on the first N problems only.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: GROUP.KEY=VALUE "
                                                   "(repeatable), e.g. grpo.learning_rate=1e-6.")] = None,
) -> None:
    """Reinforce a student with GRPO and verifier rewards (accuracy, format, language consistency)."""
    model = None
    if student.endswith((".yaml", ".yml")):
        if recipe is not None:
            raise ConfigError("--recipe: give the recipe once, either as --student or as --recipe")
        recipe_path = student
    else:
        if find(student) is None and "/" not in student:
            raise ConfigError(f"--student {student}: expected a GRPO recipe (.yaml), a checkpoint directory or a hub id")
        model = student
        recipe_path = recipe or DEFAULT_RECIPE
    summary = reinforce(recipe_path, out, model=model, problems=problems, max_steps=max_steps, limit=limit,
                        settings=set_)
    path = Path(summary["out_dir"])
    typer.echo(f"reinforced model saved to {path} (per-step metrics in {path / 'metrics.jsonl'})")
