"""`distill opd`: on-policy distillation, the student sampling and the teacher grading every token."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distill.opd import opd


def command(
    student: Annotated[str, typer.Option(help="The student checkpoint to distil into.")],
    teacher: Annotated[str, typer.Option(help="A teacher profile (a shipped name or teachers/X.yaml; transformers, or "
                                              "openai at a vLLM server) or a checkpoint.")],
    recipe: Annotated[str, typer.Option(help="An on-policy distillation recipe: a shipped name (tiny) or "
                                             "students/opd/X.yaml.")],
    out: Annotated[str, typer.Option(help="Output directory (final model, checkpoints, metrics.jsonl).")],
    problems: Annotated[str | None, typer.Option(help="A shipped set name or a problem file (else the recipe's).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N steps.")] = None,
    limit: Annotated[int | None, typer.Option(help="Train on the first N problems only.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: GROUP.KEY=VALUE "
                                                   "(repeatable), e.g. opd.learning_rate=1e-5.")] = None,
) -> None:
    """Distil a teacher into a student on-policy: per-token reverse KL on the student's own samples."""
    summary = opd(recipe, out, student=student, teacher=teacher, problems=problems, max_steps=max_steps, limit=limit,
                  settings=set_)
    path = Path(summary["out_dir"])
    typer.echo(f"distilled student saved to {path} (per-step metrics in {path / 'metrics.jsonl'})")
