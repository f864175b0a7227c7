"""`distill filter` and `distill import`: turn verified samples into a training corpus."""

from __future__ import annotations

from typing import Annotated

import typer

from distill.cli.common import parse_mapping
from distill.filters import filter_run, load_filter_config
from distill.importer import import_traces


def command(
    run: Annotated[str, typer.Argument(help="A run directory or a verified samples JSONL file.")],
    out: Annotated[str, typer.Option(help="Corpus directory.")],
    problems: Annotated[str | None, typer.Option(help="Problem set (defaults to the run's manifest).")] = None,
    config: Annotated[str | None, typer.Option(help="Filter config YAML (see recipes/filters.yaml).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="GROUP.KEY=VALUE override, e.g. "
                                                      "selection.max_per_problem=4 (repeatable).")] = None,
    max_per_problem: Annotated[int | None, typer.Option(help="Keep at most K samples per problem.")] = None,
    policy: Annotated[str | None, typer.Option(help="Selection policy: random, shortest or diverse.")] = None,
    keep: Annotated[str | None, typer.Option(help="`first`: of a key that merged shards hold twice with different "
                                                  "content, keep the first (default: refuse).")] = None,
    tokenizer: Annotated[str | None, typer.Option(help="The teacher's tokenizer (a local folder) for a run with "
                                                       "logprobs, when its manifest names none.")] = None,
) -> None:
    """Filter and select samples into corpus.jsonl, rejected.jsonl, funnel.json and a dataset card."""
    overrides = list(set_ or [])
    if max_per_problem is not None:
        overrides.append(f"selection.max_per_problem={max_per_problem}")
    if policy is not None:
        overrides.append(f"selection.policy={policy}")
    cfg = load_filter_config(config, overrides)
    funnel = filter_run(run, out, problems=problems, config=cfg, keep=keep, tokenizer=tokenizer)
    typer.echo(f"{funnel['entered']} samples in, {funnel['remaining']} in {out}/corpus.jsonl")
    for name, count in funnel["removed"].items():
        if count:
            typer.echo(f"  {name:<18} -{count}")


def import_command(
    path: Annotated[str, typer.Argument(help="A trace dataset: JSONL, Parquet or a datasets directory.")],
    out: Annotated[str, typer.Option(help="Run directory to create.")],
    map_: Annotated[list[str] | None, typer.Option("--map", help="FIELD=COLUMN (problem fields, or "
                                                      "messages/completion/reasoning/teacher).")] = None,
    kind: Annotated[str, typer.Option(help="Problem kind when the rows do not say: math, code, choice, exact.")] = "math",
    teacher: Annotated[str | None, typer.Option(help="Teacher name to record (default: a column, else the file).")] = None,
) -> None:
    """Import an existing trace dataset as samples and problems."""
    summary = import_traces(path, out, mapping=parse_mapping(map_), kind=kind, teacher=teacher)
    typer.echo(f"{summary['samples']} samples of {summary['problems']} problems in {out}")
