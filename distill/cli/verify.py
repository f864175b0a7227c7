"""`distill verify`: judge every sample (math, code, choice, exact)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from distill.errors import DistillError, RecordError
from distill.records import Problem, Sample, from_dict, to_dict


def _sample_files(run: Path) -> list[Path]:
    try:
        from distill.sampling.store import sample_files

        return list(sample_files(run))
    except ImportError:
        return sorted((run / "samples").glob("*.jsonl"))


def _manifest(run: Path) -> dict:
    path = run / "manifest.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DistillError(f"{path}: invalid JSON: {err.msg}") from err


def _read(files: list[Path], problems_by_id: dict[str, Problem]) -> Iterator[Sample]:
    from distill.jsonl import read_jsonl, repair_torn_tail

    for path in files:
        repair_torn_tail(path)
        for line, row in read_jsonl(path):
            where = f"{path}:{line}"
            sample = from_dict(Sample, row, where=where, extra="ignore")
            if sample.problem_id not in problems_by_id:
                raise RecordError(f"{where}: field 'problem_id': {sample.problem_id!r} is not in the problem set")
            yield sample


def command(
    run: Annotated[str, typer.Argument(help="A run directory or a samples JSONL file.")],
    problems: Annotated[str | None, typer.Option(help="Problem set (defaults to the run's manifest).")] = None,
    out: Annotated[str | None, typer.Option(help="Where to write verified samples (default RUN/verified.jsonl).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    answer_format: Annotated[str | None, typer.Option(
        help="Where the answer sits: after_think or answer_tags (default: the run's teacher profile, else after_think).")] = None,
    unsafe_no_sandbox: Annotated[bool, typer.Option("--unsafe-no-sandbox", help=(
        "Run code samples WITHOUT the bubblewrap sandbox: a program can then read and write your files, reach "
        "the network and forge its own verdict. Every such verdict records sandbox: none.")),] = False,
) -> None:
    """Verify samples against their problems' references."""
    from distill.problems import load_problems
    from distill.verify import apply_verdict, verify_stream

    path = Path(run)
    if not path.exists():
        raise DistillError(f"{run}: no such run directory or samples file")
    manifest = _manifest(path) if path.is_dir() else {}
    if path.is_dir():
        files = _sample_files(path)
        if not files:
            raise DistillError(f"{run}: a run directory needs samples/*.jsonl; found none")
    else:
        files = [path]
    source = problems or (manifest.get("problems") or {}).get("source")
    if not source:
        raise DistillError(f"{run}: --problems is needed (no run manifest names the problem set)")
    answer_format = answer_format or (manifest.get("teacher") or {}).get("answer_format") or "after_think"
    if answer_format not in ("after_think", "answer_tags"):
        raise DistillError(f"--answer-format {answer_format}: expected after_think or answer_tags")
    problems_by_id = {p.id: p for p in load_problems(source)}
    target = Path(out) if out else (path / "verified.jsonl" if path.is_dir() else path.with_suffix(".verified.jsonl"))
    partial = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    unsandboxed = 0
    with partial.open("w", encoding="utf-8") as handle:
        for sample, verdict in verify_stream(problems_by_id, _read(files, problems_by_id), workers, answer_format,
                                             unsafe_no_sandbox=unsafe_no_sandbox):
            row = to_dict(apply_verdict(sample, verdict))
            if verdict.details:
                row["details"] = verdict.details
                unsandboxed += verdict.details.get("unsafe_no_sandbox") is True
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            label = {True: "correct", False: "wrong", None: "null"}[verdict.correct]
            counts[label] += 1
            if verdict.correct is not True:
                counts[f"{label}:{verdict.reason}"] += 1
    os.replace(partial, target)
    total = counts["correct"] + counts["wrong"] + counts["null"]
    typer.echo(f"{total} samples: {counts['correct']} correct, {counts['wrong']} wrong, {counts['null']} not judged")
    for key in sorted(k for k in counts if ":" in k):
        label, reason = key.split(":", 1)
        typer.echo(f"  {label:<5} {reason:<14} {counts[key]}")
    if unsandboxed:
        typer.echo(f"warning: {unsandboxed} code samples ran WITHOUT a sandbox (--unsafe-no-sandbox): their programs "
                   "could have forged their verdicts", err=True)
    typer.echo(f"wrote {target}")
