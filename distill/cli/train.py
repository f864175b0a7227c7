"""`distill train` and `distill export`: fine-tune a student on a corpus; merge LoRA adapters."""

from __future__ import annotations

from typing import Annotated

import typer

from distill.train import export, train


def command(
    student: Annotated[str, typer.Option(help="Student recipe: a shipped name (tiny-student) or students/X.yaml.")],
    data: Annotated[str, typer.Option(help="Corpus directory (from distill filter).")],
    out: Annotated[str, typer.Option(help="Output directory; a run there resumes from its last checkpoint.")],
    max_steps: Annotated[int | None, typer.Option(help="Stop after S optimiser steps.")] = None,
    num_processes: Annotated[int | None, typer.Option(help="Processes to launch (torchrun).")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe key: [GROUP.]KEY=VALUE (repeatable).")
    ] = None,
) -> None:
    """Fine-tune a student on a corpus with TRL's SFT trainer."""
    summary = train(student, data, out, max_steps=max_steps, num_processes=num_processes, settings=set_)
    typer.echo(f"saved the student to {summary['out_dir']}")


def export_command(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint or LoRA adapter directory.")],
    out: Annotated[str, typer.Option(help="Output directory.")],
    merge: Annotated[bool, typer.Option("--merge", help="Merge a LoRA adapter into the base weights.")] = False,
) -> None:
    """Export a checkpoint; with --merge, a LoRA adapter becomes a full safetensors model."""
    path = export(checkpoint, out, merge=merge)
    typer.echo(f"{'merged' if merge else 'exported'} {checkpoint} into {path}")
