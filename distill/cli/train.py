"""`distill train` and `distill export`: fine-tune a student on a corpus; merge LoRA adapters."""

from __future__ import annotations

from typing import Annotated

import typer

from distill.train import export, train
from distill.train.launch import Machines


def command(
    student: Annotated[str, typer.Option(help="Student recipe: a shipped name (tiny-student) or students/X.yaml.")],
    out: Annotated[str, typer.Option(help="Output directory; a run there resumes from its last checkpoint.")],
    data: Annotated[str | None, typer.Option(
        help="Corpus directory (from distill filter); overrides the recipe's data: list.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after S optimiser steps.")] = None,
    num_processes: Annotated[int | None, typer.Option(help="Processes to launch over all machines (torchrun).")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe key: [GROUP.]KEY=VALUE (repeatable).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Train even if the memory plan says it will not fit.")] = False,
    num_machines: Annotated[int, typer.Option(help="Machines (nodes) in the run; --num-processes counts all.")] = 1,
    machine_rank: Annotated[int, typer.Option(help="This machine's rank, 0..num-machines-1.")] = 0,
    main_process_ip: Annotated[str | None, typer.Option(help="Address of machine 0 (the rendezvous).")] = None,
    main_process_port: Annotated[int, typer.Option(help="Port on machine 0 for the rendezvous.")] = 29500,
) -> None:
    """Fine-tune a student on a corpus with TRL's SFT trainer (refused when the memory plan says it will not
    fit its hardware; see `distill plan`)."""
    machines = Machines(num_machines, machine_rank, main_process_ip, main_process_port)
    summary = train(student, data, out, max_steps=max_steps, num_processes=num_processes, settings=set_,
                    force=force, machines=machines)
    typer.echo(f"saved the student to {summary['out_dir']}")


def export_command(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint or LoRA adapter directory.")],
    out: Annotated[str, typer.Option(help="Output directory.")],
    merge: Annotated[bool, typer.Option("--merge", help="Merge a LoRA adapter into the base weights.")] = False,
) -> None:
    """Export a checkpoint; with --merge, a LoRA adapter becomes a full safetensors model."""
    path = export(checkpoint, out, merge=merge)
    typer.echo(f"{'merged' if merge else 'exported'} {checkpoint} into {path}")
