"""The verify stage over a run: read a run directory's samples (or a samples file), judge every one, write
RUN/verified.jsonl atomically, and return counts per verdict and reason.

It lives beside, not inside, `distill.verify`: that package judges one sample at a time and imports only
records and shared helpers; this module knows the run directory.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import DistillError, RecordError
from distill.jsonl import read_jsonl, write_jsonl
from distill.records import Problem, Sample, from_dict, to_dict
from distill.rundir import ReadReport, RunDir, run_problems
from distill.verify import ANSWER_FORMATS, apply_verdict, ensure_sandbox, verify_stream

log = logging.getLogger(__name__)


@dataclass
class VerifyConfig:
    """How to verify: the problem set (default: the run's), workers, where the answer sits, the duplicate-key
    policy for merged shards (`keep: first`), and the explicit opt-out of the code sandbox (recorded in every
    verdict it touches)."""

    problems: str | None = None
    workers: int | None = None
    answer_format: str | None = None
    keep: str | None = None
    unsafe_no_sandbox: bool = False

    def __post_init__(self) -> None:
        if self.answer_format is not None and self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format: expected one of {', '.join(ANSWER_FORMATS)}, got {self.answer_format!r}")
        if self.keep not in (None, "first"):
            raise ValueError(f"keep: expected first (or nothing), got {self.keep!r}")


def _checked(samples: Iterator[tuple[str, Sample]], problems: dict[str, Problem]) -> Iterator[Sample]:
    for where, sample in samples:
        if sample.problem_id not in problems:
            raise RecordError(f"{where}: field 'problem_id': {sample.problem_id!r} is not in the problem set")
        yield sample


def _file_samples(path: Path) -> Iterator[tuple[str, Sample]]:
    for line, row in read_jsonl(path):
        where = f"{path}:{line}"
        yield where, from_dict(Sample, row, where=where, extra="ignore")


def _run_samples(run: RunDir, keep: str | None, report: ReadReport) -> Iterator[tuple[str, Sample]]:
    files = run.shard_files()
    if not files:
        raise DistillError(f"{run.path}: a run directory needs samples/*.jsonl; found none")
    for number, line, _, row in run.scan(keep, report, files):
        where = f"{files[number]}:{line}"
        yield where, from_dict(Sample, row, where=where, extra="ignore")


def verify_run(source: str | Path, config: VerifyConfig | None = None, out: str | Path | None = None) -> dict[str, Any]:
    """Judge every sample of a run directory (or a samples JSONL file) and write them with their verdicts.

    The target is RUN/verified.jsonl (for a file, FILE.verified.jsonl beside it) unless `out` is given;
    it is replaced atomically when every sample is judged, and the input is never modified. Returns
    {samples, correct, wrong, null, reasons, out, problems}.
    """
    config = config or VerifyConfig()
    path = Path(source)
    if not path.exists():
        raise DistillError(f"{source}: no such run directory or samples file")
    run = RunDir(path) if path.is_dir() else None
    if run is not None and not run.is_run() and not run.shard_files():
        raise DistillError(f"{source}: not a run directory (no manifest.json, no samples/*.jsonl)")
    manifest = run.manifest() if run is not None and run.is_run() else {}
    problem_list, problems_source = run_problems(run, config.problems, source)
    problems = {p.id: p for p in problem_list}
    answer_format = config.answer_format or (manifest.get("teacher") or {}).get("answer_format") or "after_think"
    report = ReadReport()
    samples = _run_samples(run, config.keep, report) if run is not None else _file_samples(path)
    target = Path(out) if out else (run.verified_path if run is not None else path.with_suffix(".verified.jsonl"))
    if target.resolve() == path.resolve():
        raise DistillError(f"--out {target}: would overwrite the input; choose another file")
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    if any(p.kind == "code" for p in problem_list):
        ensure_sandbox(config.unsafe_no_sandbox)  # refuse in one line before judging anything

    def judged() -> Iterator[dict[str, Any]]:
        for sample, verdict in verify_stream(problems, _checked(samples, problems), config.workers, answer_format,
                                             unsafe_no_sandbox=config.unsafe_no_sandbox):
            row = to_dict(apply_verdict(sample, verdict))
            if verdict.details:
                row["details"] = verdict.details
                counts["unsandboxed"] += verdict.details.get("unsafe_no_sandbox") is True
            label = {True: "correct", False: "wrong", None: "null"}[verdict.correct]
            counts[label] += 1
            if verdict.correct is not True:
                reasons[f"{label}:{verdict.reason}"] += 1
            yield row

    written = run.write_verified(judged()) if run is not None and out is None else write_jsonl(target, judged())
    summary = {"samples": written, "correct": counts["correct"], "wrong": counts["wrong"], "null": counts["null"],
               "reasons": dict(sorted(reasons.items())), "out": str(target), "problems": problems_source,
               "unsandboxed": counts["unsandboxed"],
               "answer_format": answer_format, "identical_duplicates": report.identical_duplicates,
               "kept_first": report.kept_first}
    log.info("%s: %d samples judged: %d correct, %d wrong, %d not judged", source, written, counts["correct"],
             counts["wrong"], counts["null"])
    return summary
