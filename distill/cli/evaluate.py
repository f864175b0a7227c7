"""`distill eval` and `distill compare`: R1's evaluation protocol and a comparison table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from distill.evaluate.compare import cell, compare, details, rich_table
from distill.evaluate.plots import plot_all
from distill.evaluate.run import evaluate


def eval_command(
    bench: Annotated[str, typer.Option(help="Comma-separated shipped benchmarks (aime2024, math500, gsm8k, humaneval, "
                                            "mbpp), gpqa-diamond/livecodebench (hub), or paths.")],
    out: Annotated[str, typer.Option(help="Output directory (summary.json, <bench>/problems.jsonl, samples.jsonl).")],
    model: Annotated[str | None, typer.Option(help="A local checkpoint (its chat template and generation config).")] = None,
    teacher: Annotated[str | None, typer.Option(help="A teacher profile: a shipped name (tiny) or teachers/X.yaml.")] = None,
    k: Annotated[int, typer.Option(help="Samples per problem.")] = 4,
    backend: Annotated[str | None, typer.Option(help="transformers, vllm or openai (default: the --teacher profile's, "
                                                     "transformers for --model).")] = None,
    base_url: Annotated[str | None, typer.Option(help="Endpoint for --backend openai.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Token cap (default: the profile's long maximum).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Override the profile's temperature (R1: 0.6).")] = None,
    top_p: Annotated[float | None, typer.Option(help="Override the profile's top-p (R1: 0.95).")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N problems of each benchmark.")] = None,
    workers: Annotated[int | None, typer.Option(help="Verification worker processes.")] = None,
    label: Annotated[str | None, typer.Option(help="The model's name in summaries and tables.")] = None,
    unsafe_no_sandbox: Annotated[bool, typer.Option("--unsafe-no-sandbox", help=(
        "Run code samples WITHOUT the bubblewrap sandbox (a program can then forge its verdict).")),] = False,
) -> None:
    """Evaluate a model with pass@1 over k samples, pass@k and cons@k."""
    benches = [b.strip() for b in bench.split(",") if b.strip()]
    summary = evaluate(model=model, teacher=teacher, benches=benches, k=k, out_dir=out, max_new_tokens=max_new_tokens,
                       limit=limit, temperature=temperature, top_p=top_p, seed=seed, backend=backend,
                       base_url=base_url, workers=workers, label=label, unsafe_no_sandbox=unsafe_no_sandbox)
    for name, result in summary["benchmarks"].items():
        pass1, cons = cell(result)
        typer.echo(f"{name}: pass@1 {pass1} %, cons@{k} {cons} %, {result['problems']} problems x {k} samples, "
                   f"truncated {100 * result['truncation_rate']:.1f} %")
    typer.echo(f"wrote {Path(out) / 'summary.json'}")


def compare_command(
    runs: Annotated[list[str], typer.Argument(help="Evaluation directories.")],
    out: Annotated[str | None, typer.Option(help="Markdown file for the table; the plots go next to it.")] = None,
    plots: Annotated[bool, typer.Option(help="Draw pass@k vs k and accuracy vs completion length.")] = True,
) -> None:
    """Print a table comparing several evaluations (and save it as Markdown with --out)."""
    Console().print(rich_table(list(runs)))
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"{compare(list(runs))}\n\npass@1 ± SE, its 95 % bootstrap interval over problems, pass@k, cons@k and " \
               f"the truncation rate in %; mean completion tokens.\n\n{details(list(runs))}\n"
        path.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {path}")
    if plots:
        folder = Path(out).parent if out is not None else Path(runs[0])
        for written in plot_all(list(runs), folder):
            typer.echo(f"wrote {written}")
