"""`distill verify`: judge every sample (math, code, choice, exact)."""

from __future__ import annotations

from typing import Annotated

import typer

from distill.verify_run import VerifyConfig, verify_run


def command(
    run: Annotated[str, typer.Argument(help="A run directory or a samples JSONL file (never modified).")],
    problems: Annotated[str | None, typer.Option(help="Problem set (defaults to the run's manifest).")] = None,
    out: Annotated[str | None, typer.Option(help="Where to write verified samples (default RUN/verified.jsonl, "
                                                 "or FILE.verified.jsonl beside a file).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    answer_format: Annotated[str | None, typer.Option(
        help="Where the answer sits: after_think or answer_tags (default: the run's teacher profile, else after_think).")] = None,
    keep: Annotated[str | None, typer.Option(help="`first`: of a key that merged shards hold twice with different "
                                                  "content, keep the first (default: refuse).")] = None,
    unsafe_no_sandbox: Annotated[bool, typer.Option("--unsafe-no-sandbox", help=(
        "Run code samples WITHOUT the bubblewrap sandbox: a program can then read and write your files, reach "
        "the network and forge its own verdict. Every such verdict records sandbox: none.")),] = False,
) -> None:
    """Verify samples against their problems' references."""
    summary = verify_run(run, VerifyConfig(problems=problems, workers=workers, answer_format=answer_format, keep=keep,
                                           unsafe_no_sandbox=unsafe_no_sandbox), out=out)
    typer.echo(f"{summary['samples']} samples: {summary['correct']} correct, {summary['wrong']} wrong, "
               f"{summary['null']} not judged")
    for key, count in summary["reasons"].items():
        label, reason = key.split(":", 1)
        typer.echo(f"  {label:<5} {reason:<14} {count}")
    if summary["unsandboxed"]:
        typer.echo(f"warning: {summary['unsandboxed']} code samples ran WITHOUT a sandbox (--unsafe-no-sandbox): their "
                   "programs could have forged their verdicts", err=True)
    typer.echo(f"wrote {summary['out']}")
