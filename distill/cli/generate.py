"""`distill generate`: sample reasoning traces from a teacher into a resumable run directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer


def command(
    problems: Annotated[str, typer.Option(help="A shipped set name or a problem file.")],
    out: Annotated[str, typer.Option(help="Run directory (created, or resumed).")],
    teacher: Annotated[str | None, typer.Option(help="Teacher profile, teachers/X.yaml.")] = None,
    model: Annotated[str | None, typer.Option(help="A local model path or id (without a profile).")] = None,
    backend: Annotated[str | None, typer.Option(help="transformers, vllm or openai.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    samples: Annotated[int | None, typer.Option(help="Samples per problem.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling top-p.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Max new tokens per completion.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first K problems.")] = None,
    shard: Annotated[str | None, typer.Option(help="I/N: this process's share of the problems.")] = None,
    until_correct: Annotated[int | None, typer.Option(help="Stop a problem after K verified-correct samples.")] = None,
    seed: Annotated[int | None, typer.Option(help="Run seed (samples are seeded from it and their keys).")] = None,
    stop: Annotated[list[str] | None, typer.Option(help="A stop string (repeatable).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Rows per batch (transformers backend).")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight (openai backend).")] = None,
    max_samples: Annotated[int | None, typer.Option(help="Budget: stop after this many samples.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Budget: stop after this many completion tokens.")] = None,
    max_cost: Annotated[float | None, typer.Option(help="Budget: stop at this cost in USD (profile prices).")] = None,
    unsafe_no_sandbox: Annotated[bool, typer.Option("--unsafe-no-sandbox", help=(
        "With --until-correct: run code samples WITHOUT the bubblewrap sandbox.")),] = False,
) -> None:
    """Sample reasoning traces from a teacher."""
    from distill.errors import ConfigError
    from distill.problems import SHIPPED, load_problems
    from distill.sampling import Budget, generate_run, load_profile, parse_shard, profile_for_model
    from distill.sampling.engine import default_verifier

    if teacher is None and model is None:
        raise ConfigError("give a teacher profile (--teacher teachers/X.yaml) or a model (--model PATH --backend B)")
    if teacher is not None:
        profile = load_profile(teacher, {"backend": backend})
        if model is not None:
            profile = dataclasses.replace(profile, model=model)
    else:
        assert model is not None
        profile = profile_for_model(model, backend or "transformers", base_url)
    if base_url is not None:
        profile = dataclasses.replace(profile, api=dataclasses.replace(profile.api, base_url=base_url))
    if batch_size is not None:
        profile = dataclasses.replace(profile, local=dataclasses.replace(profile.local, batch_size=batch_size))
    if concurrency is not None:
        profile = dataclasses.replace(profile, api=dataclasses.replace(profile.api, concurrency=concurrency))
    try:
        config = profile.sampling.replace(n=samples, temperature=temperature, top_p=top_p,
                                          max_new_tokens=max_new_tokens, seed=seed, stop=stop)
    except ConfigError as err:
        raise ConfigError(f"sampling options: {err}") from err
    problem_set = load_problems(problems)
    if until_correct is not None and any(p.kind == "code" for p in problem_set):
        from distill.verify import ensure_sandbox

        ensure_sandbox(unsafe_no_sandbox)  # refuse before paying for any sample
    source = problems if problems in SHIPPED or not Path(problems).exists() else str(Path(problems).resolve())
    summary = generate_run(
        problem_set, profile, config, out, problems_source=source, limit=limit, shard=parse_shard(shard),
        until_correct=until_correct, budget=Budget(max_samples, max_tokens, max_cost),
        verifier=default_verifier(profile, unsafe_no_sandbox),
    )
    this_run = summary["this_run"]
    state = "complete" if summary["complete"] else f"stopped ({summary['stopped']})" if summary["stopped"] else "partial"
    typer.echo(f"{out}: {summary['samples']} samples stored, {state}; this run wrote {this_run['samples']} "
               f"({this_run['tokens_per_s']} tokens/s)")
