"""`distill generate`: sample reasoning traces from a teacher into a resumable run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distill.errors import ConfigError, DistillError
from distill.problems import SHIPPED, load_problems
from distill.rundir import parse_shard
from distill.sampling import Budget, generate_run, resolve_teacher
from distill.sampling.engine import default_verifier
from distill.verify import ensure_sandbox


def report(out: str, summary: dict) -> None:
    """Print what a sampling run stored, and exit non-zero when keys are missing for any reason other
    than the user's budget or `--until-correct` (the exit-code rule of every command that samples)."""
    this_run = summary["this_run"]
    state = "complete" if summary["complete"] else f"stopped ({summary['stopped']})" if summary["stopped"] else "partial"
    typer.echo(f"{out}: {summary['samples']} samples stored, {state}; this run wrote {this_run['samples']} "
               f"({this_run['tokens_per_s']} tokens/s)")
    if not summary["ok"]:
        raise DistillError(f"{out}: {summary['shard_missing']} samples are missing "
                           f"({summary['stopped'] or 'the backend returned fewer completions than asked'}); "
                           "run the same command again to sample only what is missing")


def command(
    problems: Annotated[str, typer.Option(help="A shipped set name or a problem file.")],
    out: Annotated[str, typer.Option(help="Run directory (created, or resumed).")],
    teacher: Annotated[str | None, typer.Option(help="Teacher profile: a shipped name (tiny) or teachers/X.yaml.")] = None,
    model: Annotated[str | None, typer.Option(help="A local model path or id (without a profile).")] = None,
    backend: Annotated[str | None, typer.Option(help="transformers, vllm or openai.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    api_key_env: Annotated[str | None, typer.Option(
        help="Environment variable holding the API key (openai backend; default OPENAI_API_KEY without a "
             "profile, the profile's api.api_key_env with one; '' sends no key).")] = None,
    samples: Annotated[int | None, typer.Option(help="Samples per problem.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling top-p.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Max new tokens per completion.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first K problems.")] = None,
    shard: Annotated[str | None, typer.Option(help="I/N: this process's share of the problems.")] = None,
    until_correct: Annotated[int | None, typer.Option(help="Stop a problem after K verified-correct samples.")] = None,
    seed: Annotated[int | None, typer.Option(help="Run seed (samples are seeded from it and their keys).")] = None,
    stop: Annotated[list[str] | None, typer.Option(help="A stop string (repeatable).")] = None,
    logprobs: Annotated[int | None, typer.Option(help="Store the teacher's top-K logprobs of every token (K).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Rows per batch (transformers backend).")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight (openai backend).")] = None,
    max_samples: Annotated[int | None, typer.Option(help="Budget: stop after this many samples.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Budget: stop after this many completion tokens.")] = None,
    max_cost: Annotated[float | None, typer.Option(help="Budget: stop at this cost in USD (profile prices).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a profile key: GROUP.KEY=VALUE "
                                                   "(repeatable), e.g. vllm.max_model_len=4096.")] = None,
    unsafe_no_sandbox: Annotated[bool, typer.Option("--unsafe-no-sandbox", help=(
        "With --until-correct: run code samples WITHOUT the bubblewrap sandbox.")),] = False,
) -> None:
    """Sample reasoning traces from a teacher."""
    settings = list(set_ or [])
    if batch_size is not None:
        settings.append(f"local.batch_size={batch_size}")
    if concurrency is not None:
        if concurrency < 1:
            raise ConfigError(f"--concurrency {concurrency}: concurrency: expected at least 1 request in flight, "
                              f"got {concurrency}")
        settings.append(f"api.concurrency={concurrency}")
    profile = resolve_teacher(teacher, model, backend, base_url, settings, api_key_env)
    if api_key_env is not None and profile.backend != "openai":
        raise ConfigError(f"--api-key-env {api_key_env}: only the openai backend sends a key")
    try:
        config = profile.sampling.replace(n=samples, temperature=temperature, top_p=top_p,
                                          max_new_tokens=max_new_tokens, seed=seed, stop=stop, logprobs=logprobs)
    except ConfigError as err:
        raise ConfigError(f"sampling options: {err}") from err
    problem_set = load_problems(problems)
    if until_correct is not None and any(p.kind == "code" for p in problem_set):
        ensure_sandbox(unsafe_no_sandbox)  # refuse before paying for any sample
    source = problems if problems in SHIPPED or not Path(problems).exists() else str(Path(problems).resolve())
    summary = generate_run(
        problem_set, profile, config, out, problems_source=source, limit=limit, shard=parse_shard(shard),
        until_correct=until_correct, budget=Budget(max_samples, max_tokens, max_cost),
        verifier=default_verifier(profile, unsafe_no_sandbox),
    )
    report(out, summary)
