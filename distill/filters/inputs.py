"""Where `distill filter` reads from: sample files with byte offsets, the problem set, the prompt.

Samples are read line by line with the byte offset of each line, so the selection pass can seek
back to the survivors of one problem instead of holding every sample in memory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.errors import DistillError, RecordError
from distill.problems import MATH_PROMPT_SUFFIX, load_problems
from distill.records import Message, Problem, Sample, from_dict

log = logging.getLogger(__name__)


def sample_files(source: str | Path) -> list[Path]:
    """The sample files of a run dir (`verified.jsonl` if present, else `samples/*.jsonl`) or one JSONL file."""
    path = Path(source)
    if path.is_dir():
        if (path / "verified.jsonl").exists():
            return [path / "verified.jsonl"]
        files = sorted((path / "samples").glob("*.jsonl"))
        if not files:
            raise DistillError(f"{path}: a run directory needs verified.jsonl or samples/*.jsonl; found neither")
        return files
    if not path.exists():
        raise DistillError(f"{path}: no such run directory or samples file")
    return [path]


def read_with_offsets(path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Yield `(line_number, byte_offset, object)` for each line; a torn last line is skipped with a warning."""
    offset = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as err:
                if not raw.endswith(b"\n"):
                    log.warning("%s:%d: skipping a torn last line (an interrupted write)", path, number)
                    return
                raise RecordError(f"{path}:{number}: invalid JSON: {err}") from err
            if not isinstance(obj, dict):
                raise RecordError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            yield number, start, obj


_SAMPLE_FIELDS = tuple(f.name for f in dataclasses.fields(Sample))


def parse_sample(obj: dict[str, Any], where: str, trusted: bool = False) -> Sample:
    """A Sample from a row; extra columns (a previous `filter`, a `pass_rate`) are ignored.

    `trusted` skips type checks, for rows this run already validated once (the second pass).
    """
    if trusted:
        return Sample(**{k: obj[k] for k in _SAMPLE_FIELDS if k in obj})
    return from_dict(Sample, obj, where=where, extra="ignore")


def plain(record: Any) -> dict[str, Any]:
    """A record's fields as a shallow dict (dataclasses.asdict deep-copies, which is slow at 1M rows)."""
    return dict(record.__dict__)


def run_dir_of(source: str | Path) -> Path | None:
    """The run directory a source belongs to: itself, or the folder of a file next to a manifest."""
    path = Path(source)
    for candidate in (path, path.parent):
        if candidate.is_dir() and (candidate / "manifest.json").exists():
            return candidate
    return None


def read_run_manifest(run_dir: Path) -> dict[str, Any]:
    """The run manifest, through the sampling store's reader when it is installed."""
    try:
        from distill.sampling import read_manifest
    except ImportError:  # the sampling stage is optional for filtering a JSONL file
        return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    return read_manifest(run_dir)


def resolve_problems(source: str | Path, problems: str | None) -> tuple[list[Problem], str, dict[str, Any]]:
    """The problems for a run: `--problems`, else the manifest's problem set; also the manifest (or {})."""
    run_dir = run_dir_of(source)
    manifest = read_run_manifest(run_dir) if run_dir is not None else {}
    if problems is not None:
        return load_problems(problems), problems, manifest
    recorded = (manifest.get("problems") or {}).get("source")
    if not recorded:
        raise DistillError(f"{source}: no problem set: the run has no manifest naming one; pass --problems NAME|PATH "
                           "(the corpus and several filters need the prompts)")
    candidates = [str(recorded)]
    if run_dir is not None and not Path(recorded).is_absolute():
        candidates.append(str(run_dir / recorded))
    if run_dir is not None:
        candidates.append(str(run_dir / "problems.jsonl"))
    for candidate in candidates:
        if candidate in _shipped() or Path(candidate).exists():
            return load_problems(candidate), candidate, manifest
    raise DistillError(f"{run_dir}/manifest.json: problem set {recorded!r} not found; pass --problems NAME|PATH")


def _shipped() -> set[str]:
    from distill.problems import SHIPPED

    return set(SHIPPED)


def teacher_profile(manifest: dict[str, Any]) -> Any:
    """The teacher profile recorded in a run manifest (for the prompt as the teacher saw it), or None."""
    teacher = manifest.get("teacher")
    if not isinstance(teacher, dict):
        return None
    try:
        from distill.config import from_mapping
        from distill.sampling.profile import TeacherProfile
    except ImportError:
        return None
    keys = ("name", "model", "system_prompt", "math_prompt_suffix", "prompt_template", "open_think", "answer_format")
    try:
        return from_mapping(TeacherProfile, {k: teacher[k] for k in keys if k in teacher}, "manifest.json: teacher")
    except DistillError as err:
        log.warning("the run's teacher profile is unreadable (%s); prompts get the default math suffix", err)
        return None


def user_messages(problem: Problem, profile: Any = None) -> list[Message]:
    """The prompt as the teacher saw it: `distill.sampling.build_prompt`, else the prompt plus the math suffix.

    >>> user_messages(Problem("p", "1+1?"))[0]["content"]
    '1+1?\\nPlease reason step by step, and put your final answer within \\\\boxed{}.'
    """
    if profile is not None:
        try:
            from distill.sampling import build_prompt

            return build_prompt(problem, profile)
        except (ImportError, OSError) as err:
            log.debug("build_prompt unavailable (%s); using the default prompt", err)
    if isinstance(problem.prompt, list):
        return [dict(m) for m in problem.prompt if m.get("role") != "assistant"]
    text = f"{problem.prompt}\n{MATH_PROMPT_SUFFIX}" if problem.kind == "math" else problem.prompt
    return [{"role": "user", "content": text}]
