"""`distill toy problems` and `distill toy model`: the tiny world that runs without downloads."""

from __future__ import annotations

from typing import Annotated

import typer

from distill.errors import ConfigError
from distill.jsonl import write_jsonl
from distill.records import to_dict
from distill.toy.model import save_tiny_model
from distill.toy.problems import generate

app = typer.Typer(help="The tiny world: toy arithmetic problems and tiny local models.", no_args_is_help=True)


@app.command("problems")
def problems(
    out: Annotated[str, typer.Option(help="JSONL file to write.")],
    n: Annotated[int, typer.Option(help="How many problems.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same problems.")] = 0,
    difficulty: Annotated[str, typer.Option(help="A level 1-5 or a range such as 1-3.")] = "1-3",
    gold: Annotated[bool, typer.Option("--gold", help="Add a `gold` field holding the R1-format trace.")] = False,
) -> None:
    """Write N toy arithmetic word problems with exact answers."""
    low, _, high = difficulty.partition("-")
    try:
        levels = (int(low), int(high or low))
        pairs = generate(n, seed=seed, difficulty=levels)
    except ValueError as err:
        raise ConfigError(f"--difficulty {difficulty}: {err}") from err
    rows = ({**to_dict(p), **({"gold": g} if gold else {})} for p, g in pairs)
    count = write_jsonl(out, rows)
    typer.echo(f"wrote {count} toy problems to {out}")


@app.command("model")
def model(
    out: Annotated[str, typer.Option(help="Directory to save the model and tokenizer in.")],
    architecture: Annotated[str, typer.Option(help="qwen2 or llama.")] = "qwen2",
    seed: Annotated[int, typer.Option(help="Seed for the random weights.")] = 0,
    hidden_size: Annotated[int, typer.Option(help="Width of the model.")] = 64,
    layers: Annotated[int, typer.Option(help="Number of layers.")] = 2,
) -> None:
    """Save a tiny random R1-style model with a locally built tokenizer and chat template."""
    if architecture not in ("qwen2", "llama"):
        raise ConfigError(f"--architecture {architecture}: expected qwen2 or llama")
    path = save_tiny_model(out, architecture=architecture, seed=seed, hidden_size=hidden_size, num_layers=layers)  # type: ignore[arg-type]
    typer.echo(f"saved a tiny {architecture} model to {path}")
