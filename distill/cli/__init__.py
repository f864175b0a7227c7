"""The `distill` command line: one thin command per stage (ARCHITECTURE.md), each in its own module."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from distill.cli import (
    evaluate,
    filter,
    generate,
    opd,
    plan,
    problems,
    reinforce,
    report,
    run,
    toy,
    train,
    verify,
)
from distill.errors import DistillError

app = typer.Typer(
    name="distill",
    help="Distil reasoning into small models: sample a teacher, verify, filter, train, evaluate, reinforce.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Libraries that log one line per HTTP request: kept at WARNING unless --verbose.
CHATTY_LOGGERS = ("httpx", "httpcore")


@app.callback()
def options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs, per-request HTTP lines included.")] = False,
) -> None:
    """Options for every command."""
    set_verbosity(verbose)


def set_verbosity(verbose: bool) -> None:
    """DEBUG everywhere with `--verbose`; otherwise per-request HTTP logs stay at WARNING (a long run must
    not print a line per request: the progress bar and the summary carry that)."""
    if verbose:
        logging.getLogger().setLevel(logging.DEBUG)
        logging.getLogger("distill").setLevel(logging.DEBUG)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


app.add_typer(problems.app, name="problems")
app.command("import")(filter.import_command)
app.add_typer(toy.app, name="toy")
app.command("generate")(generate.command)
app.command("verify")(verify.command)
app.command("filter")(filter.command)
app.command("train")(train.command)
app.command("plan")(plan.command)
app.command("eval")(evaluate.eval_command)
app.command("compare")(evaluate.compare_command)
app.command("export")(train.export_command)
app.command("reinforce")(reinforce.command)
app.command("opd")(opd.command)
app.command("report")(report.command)
app.command("run")(run.command)


def main() -> None:
    """Entry point of the `distill` console script: bad input ends in one line on stderr and exit 1."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        app()
    except DistillError as err:
        typer.echo(f"error: {err}", err=True)
        raise SystemExit(1) from None
    except FileNotFoundError as err:
        typer.echo(f"error: {err.filename or err}: no such file or directory", err=True)
        raise SystemExit(1) from None
