"""`distill plan`: per-GPU memory, verdict, smallest setup that fits, and throughput of a student recipe."""

from __future__ import annotations

from typing import Annotated

import typer


def command(
    student: Annotated[str, typer.Option(help="Student recipe, students/X.yaml.")],
    gpus: Annotated[int | None, typer.Option(help="GPUs per node (else the recipe's hardware, else detected).")] = None,
    gpu_memory: Annotated[float | None, typer.Option(help="Memory per GPU in GiB.")] = None,
    nodes: Annotated[int | None, typer.Option(help="Nodes.")] = None,
    seq_len: Annotated[int | None, typer.Option(help="Tokens per sequence (default: the recipe's max_length).")] = None,
    mfu: Annotated[float, typer.Option(help="Model-FLOPs utilisation to state throughput at.")] = 0.4,
    gpu_tflops: Annotated[float, typer.Option(help="Peak dense bf16 TFLOP/s per GPU (H100/H200: 989).")] = 989.0,
    epoch_tokens: Annotated[float | None, typer.Option(help="Tokens in one epoch, for hours per epoch.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe key, KEY=YAML_VALUE (repeatable).")
    ] = None,
) -> None:
    """Predict per-GPU peak memory (broken down), whether the recipe fits, the smallest setup that fits,
    and tokens/s at a stated MFU."""
    import yaml

    from distill.cli.common import parse_mapping
    from distill.plan.preflight import hardware_for, plan_recipe
    from distill.plan.report import render
    from distill.train.recipe import load_student_recipe

    overrides = {k: yaml.safe_load(v) for k, v in parse_mapping(set_, "--set").items()}
    recipe = load_student_recipe(student, overrides)
    hardware = hardware_for(recipe, gpus=gpus, gpu_memory_gib=gpu_memory, nodes=nodes)
    result = plan_recipe(recipe, hardware, seq_len=seq_len, mfu=mfu, peak_tflops=gpu_tflops, epoch_tokens=epoch_tokens)
    typer.echo(render(result, hardware.source))
