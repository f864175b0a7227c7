"""`distill generate`: sample reasoning traces from a teacher into a resumable run directory."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from distill.cli.common import not_built


def command(
    problems: Annotated[str, typer.Option(help="A shipped set name or a problem file.")],
    out: Annotated[str, typer.Option(help="Run directory (created, or resumed).")],
    teacher: Annotated[Optional[str], typer.Option(help="Teacher profile, teachers/X.yaml.")] = None,
    model: Annotated[Optional[str], typer.Option(help="A local model path or id (without a profile).")] = None,
    backend: Annotated[Optional[str], typer.Option(help="transformers, vllm or openai.")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible server URL.")] = None,
    samples: Annotated[Optional[int], typer.Option(help="Samples per problem.")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature.")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="Nucleus sampling top-p.")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option(help="Max new tokens per completion.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first K problems.")] = None,
    shard: Annotated[Optional[str], typer.Option(help="I/N: this process's share of the problems.")] = None,
    until_correct: Annotated[Optional[int], typer.Option(help="Stop a problem after K verified-correct samples.")] = None,
) -> None:
    """Sample reasoning traces from a teacher."""
    not_built("generate", 3)
