"""`distill reinforce`: GRPO with the verifiers as rewards."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from distill.cli.common import not_built


def command(
    student: Annotated[str, typer.Option(help="Student recipe or a checkpoint.")],
    problems: Annotated[str, typer.Option(help="A shipped set name or a problem file.")],
    out: Annotated[str, typer.Option(help="Output directory.")],
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after S steps.")] = None,
) -> None:
    """Reinforce a student with GRPO and verifier rewards."""
    not_built("reinforce", 9)
