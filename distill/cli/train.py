"""`distill train` and `distill export`: fine-tune a student on a corpus; merge LoRA adapters."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from distill.cli.common import not_built


def command(
    student: Annotated[str, typer.Option(help="Student recipe, students/X.yaml.")],
    data: Annotated[str, typer.Option(help="Corpus directory (from distill filter).")],
    out: Annotated[str, typer.Option(help="Output directory.")],
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after S optimiser steps.")] = None,
    num_processes: Annotated[Optional[int], typer.Option(help="Processes to launch (torchrun).")] = None,
) -> None:
    """Fine-tune a student on a corpus with TRL's SFT trainer."""
    not_built("train", 6)


def export_command(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint or LoRA adapter directory.")],
    out: Annotated[str, typer.Option(help="Output directory.")],
    merge: Annotated[bool, typer.Option("--merge", help="Merge a LoRA adapter into the base weights.")] = False,
) -> None:
    """Export a checkpoint; with --merge, a LoRA adapter becomes a full safetensors model."""
    not_built("export", 6)
