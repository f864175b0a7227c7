"""`distill problems show NAME|PATH`: counts per kind and one example."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer
from rich.console import Console

from distill.cli.common import parse_mapping
from distill.problems import LoadReport, load_problems

app = typer.Typer(help="Inspect problem sets (shipped benchmarks or your own files).", no_args_is_help=True)


@app.command("show")
def show(
    source: Annotated[str, typer.Argument(help="A shipped set (math500, aime2024, gsm8k, humaneval, mbpp, mbpp:all) or a path.")],
    map_: Annotated[list[str] | None, typer.Option("--map", help="FIELD=COLUMN, for sets that name fields differently.")] = None,
    kind: Annotated[str | None, typer.Option(help="Kind for rows that carry none (math, code, choice, exact).")] = None,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Skip malformed rows, count them and write them to --rejects.")] = False,
    rejects: Annotated[str | None, typer.Option(help="Where --skip-invalid writes rejected rows (JSONL).")] = None,
) -> None:
    """Print how many problems a set holds per kind, and one example."""
    report = LoadReport()
    problems = load_problems(source, parse_mapping(map_), kind, skip_invalid, rejects, report)
    console = Console()
    counts = Counter(p.kind for p in problems)
    console.print(f"[bold]{source}[/bold]: {len(problems)} problems (" + ", ".join(f"{n} {k}" for k, n in counts.most_common()) + ")")
    if report.rejects:
        console.print(f"skipped {len(report.rejects)} invalid rows" + (f", written to {rejects}" if rejects else ""))
    if report.duplicates:
        console.print(f"merged {report.duplicates} duplicate problems")
    example = problems[0]
    console.print(f"example [cyan]{example.id}[/cyan] ({example.kind}):", highlight=False)
    console.print(str(example.prompt)[:600], markup=False, highlight=False)
    if example.answer is not None:
        console.print(f"answer: {example.answer[:300]}", markup=False, highlight=False)
