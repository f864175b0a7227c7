"""`distill plan`: per-GPU memory, verdict, smallest setup that fits, and throughput of a student recipe."""

from __future__ import annotations

from typing import Annotated

import typer

from distill.plan.preflight import hardware_for, plan_recipe
from distill.plan.report import render
from distill.train.recipe import load_student_recipe


def command(
    student: Annotated[str, typer.Option(help="Student recipe: a shipped name or students/X.yaml.")],
    gpus: Annotated[int | None, typer.Option(help="GPUs per node (else the recipe's hardware, else detected).")] = None,
    gpu_memory: Annotated[float | None, typer.Option(help="Memory per GPU in GiB.")] = None,
    nodes: Annotated[int | None, typer.Option(help="Nodes.")] = None,
    seq_len: Annotated[int | None, typer.Option(help="Tokens per sequence (default: the recipe's max_length).")] = None,
    mfu: Annotated[float, typer.Option(help="Model-FLOPs utilisation to state throughput at.")] = 0.4,
    gpu_tflops: Annotated[float, typer.Option(help="Peak dense bf16 TFLOP/s per GPU (H100/H200: 989).")] = 989.0,
    epoch_tokens: Annotated[float | None, typer.Option(help="Tokens in one epoch, for hours per epoch.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe key: [GROUP.]KEY=VALUE (repeatable).")
    ] = None,
) -> None:
    """Predict per-GPU peak memory (broken down), whether the recipe fits, the smallest setup that fits,
    and tokens/s at a stated MFU."""
    recipe = load_student_recipe(student, set_)
    hardware = hardware_for(recipe, gpus=gpus, gpu_memory_gib=gpu_memory, nodes=nodes)
    result = plan_recipe(recipe, hardware, seq_len=seq_len, mfu=mfu, peak_tflops=gpu_tflops, epoch_tokens=epoch_tokens)
    typer.echo(render(result, hardware.source))
