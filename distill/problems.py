"""Load problem sets: the shipped benchmarks by name, or JSONL, Parquet, CSV, a saved `datasets`
directory or (online only) a hub dataset, with field mapping, stable ids and duplicate merging.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.jsonl import read_jsonl, read_parquet, write_jsonl
from distill.paths import shipped_path
from distill.records import KINDS, Problem, RecordError, from_dict, prompt_text

log = logging.getLogger(__name__)

# Where a source names a field differently; the first present column fills the field.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "unique_id", "task_id", "problem_id", "uid"),
    "prompt": ("prompt", "problem", "question", "input", "instruction"),
    "answer": ("answer", "final_answer", "expected_answer", "target", "gold"),
    "solution": ("solution", "worked_solution", "rationale"),
}
PROBLEM_FIELDS = ("id", "prompt", "kind", "answer", "solution", "tests", "choices", "source", "meta")



@dataclass
class LoadReport:
    """What a load did besides returning problems: rejected lines and merged duplicates."""

    rejects: list[str] = field(default_factory=list)
    duplicates: int = 0


def content_id(prompt: Any, kind: str = "math") -> str:
    """A stable id derived from a problem's content, for sources that have none.

    >>> content_id("What is 1+1?")
    'p-2706612e9b378870'
    >>> content_id("What  is 1+1?") == content_id("What is 1+1?")
    True
    """
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)
    digest = hashlib.sha256(f"{kind}\x00{' '.join(text.split())}".encode()).hexdigest()
    return "p-" + digest[:16]


def map_fields(row: Mapping[str, Any], mapping: Mapping[str, str] | None = None, kind: str | None = None) -> dict[str, Any]:
    """Turn a source row into Problem fields.

    An explicit `mapping` (`field -> column`) and then the usual aliases fill a field the row
    lacks; a field the row already has is never overwritten. Columns that are no Problem field
    go into `meta`. A GSM8K-style answer (`worked solution\\n#### 42`) becomes `solution` + `answer`.

    >>> map_fields({"question": "2+2?", "answer": "So 4.\\n#### 4"})["answer"]
    '4'
    >>> map_fields({"prompt": "keep", "question": "drop"})["prompt"]
    'keep'
    """
    mapping = dict(mapping or {})
    out: dict[str, Any] = {k: row[k] for k in PROBLEM_FIELDS if k in row and row[k] is not None}
    used = set(out)
    for target, column in mapping.items():
        if target not in PROBLEM_FIELDS:
            raise RecordError(f"--map {target}={column}: {target!r} is not a problem field ({', '.join(PROBLEM_FIELDS)})")
        if target not in out and column in row and row[column] is not None:
            out[target] = row[column]
            used.add(column)
    for target, aliases in FIELD_ALIASES.items():
        if target in out:
            continue
        for column in aliases:
            if column in row and row[column] is not None and column not in used:
                out[target] = row[column]
                used.add(column)
                break
    if isinstance(out.get("answer"), str) and "\n#### " in out["answer"] and "solution" not in out:
        out["solution"] = out["answer"]
        out["answer"] = out["answer"].rsplit("\n#### ", 1)[1].strip().replace(",", "")
    if isinstance(out.get("answer"), (int, float)) and not isinstance(out.get("answer"), bool):
        out["answer"] = str(out["answer"])
    if kind and "kind" not in out:
        out["kind"] = kind
    meta = dict(out.get("meta") or {})
    for column, value in row.items():
        if column not in PROBLEM_FIELDS and column not in used:
            meta[column] = value
    if meta:
        out["meta"] = meta
    if "prompt" in out and "id" not in out:
        out["id"] = content_id(out["prompt"], out.get("kind", "math"))
    if "id" in out and not isinstance(out["id"], str):
        out["id"] = str(out["id"])
    return out


# ---------------------------------------------------------------- shipped sets


def _math_row(row: dict[str, Any]) -> dict[str, Any]:
    meta = {k: row[k] for k in ("subject", "level", "contest", "problem_number", "url") if k in row}
    return {"id": row["id"], "prompt": row["problem"], "answer": row["answer"], "solution": row.get("solution"),
            "kind": "math", "source": row["source"], "meta": meta}


def _humaneval_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "prompt": row["prompt"], "answer": row["prompt"] + row["canonical_solution"], "kind": "code",
            "source": "humaneval", "tests": {"type": "check", "entry_point": row["entry_point"], "code": row["test"]},
            "meta": {"entry_point": row["entry_point"]}}


def _mbpp_row(row: dict[str, Any]) -> dict[str, Any]:
    asserts = list(row["test_list"])
    prompt = row["text"] + "\nYour code should pass these tests:\n\n" + "\n".join(asserts)
    return {"id": row["id"], "prompt": prompt, "answer": row["code"].replace("\r\n", "\n"), "kind": "code", "source": "mbpp",
            "tests": {"type": "asserts", "asserts": asserts, "setup": row.get("test_setup_code") or "",
                      "entry_point": row["entry_point"]},
            "meta": {"split": row["split"], "task_id": row["task_id"], "challenge_asserts": row.get("challenge_test_list") or []}}


@dataclass(frozen=True)
class ShippedSet:
    """A benchmark that ships in `data/`: its file, how a row becomes a problem, and which rows."""

    file: str
    convert: Callable[[dict[str, Any]], dict[str, Any]]
    keep: Callable[[dict[str, Any]], bool] = lambda row: True


SHIPPED: dict[str, ShippedSet] = {
    "math500": ShippedSet("math500.jsonl", _math_row),
    "aime2024": ShippedSet("aime2024.jsonl", _math_row),
    "gsm8k": ShippedSet("gsm8k_test.jsonl", _math_row),
    "humaneval": ShippedSet("humaneval.jsonl", _humaneval_row),
    "mbpp": ShippedSet("mbpp.jsonl", _mbpp_row, lambda row: row["split"] == "test"),
    "mbpp:all": ShippedSet("mbpp.jsonl", _mbpp_row),
}


# ---------------------------------------------------------------- readers


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                yield reader.line_num, dict(row)
    except UnicodeDecodeError as err:
        raise RecordError(f"{path}: not UTF-8 ({err.reason} at byte {err.start})") from err


def _read_saved_dataset(path: Path, splits: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        split = next((s for s in splits if s in loaded), next(iter(loaded)))
        loaded = loaded[split]
    for number, row in enumerate(loaded, start=1):
        yield number, dict(row)


def read_rows(path: str | Path, splits: tuple[str, ...] = ("test", "train")) -> Iterator[tuple[int, dict[str, Any]]]:
    """`(line_or_row_number, row)` of a local table: JSONL, Parquet, CSV or a saved `datasets` directory.

    For a `DatasetDict`, the first of `splits` that it has is read (else its first split).
    """
    path = Path(path)
    if path.is_dir():
        return _read_saved_dataset(path, splits)
    if not path.exists():
        raise RecordError(f"{path}: no such file or directory")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return read_jsonl(path)
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise RecordError(f"{path}: unknown file type {suffix!r} (expected .jsonl, .parquet, .csv or a datasets directory)")


def _read_hub(name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    if offline:
        raise RecordError(f"{name}: not a shipped set or a local path, and the Hugging Face hub is offline")
    import datasets

    dataset_name, _, split = name.partition(":")
    try:
        loaded = datasets.load_dataset(dataset_name, split=split or "train")
    except Exception as err:  # the hub client raises many types for "cannot reach the hub"
        raise RecordError(f"{name}: not a shipped set or a local path, and loading it from the hub failed "
                          f"(offline?): {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
    for number, row in enumerate(loaded, start=1):
        yield number, dict(row)


def _rows(source: str) -> tuple[Iterator[tuple[int, dict[str, Any]]], str]:
    """Rows of a source and the label that error messages use for it ('file' or 'file:line')."""
    path = Path(source)
    if path.exists():
        rows = read_rows(path)
        if path.suffix.lower() == ".csv":  # CSV has no null: an empty cell means the column is absent
            rows = ((n, {k: v for k, v in row.items() if v not in (None, "")}) for n, row in rows)
        return rows, str(path)
    if "/" in source and not source.startswith((".", "/")) and source.count("/") == 1:
        return _read_hub(source), source
    raise RecordError(f"{source}: no such file, and not a shipped set ({', '.join(SHIPPED)})")


def load_problems(
    source: str | Path,
    mapping: Mapping[str, str] | None = None,
    kind: str | None = None,
    skip_invalid: bool = False,
    rejects_path: str | Path | None = None,
    report: LoadReport | None = None,
) -> list[Problem]:
    """Load a problem set by shipped name (`math500`, `mbpp:all`, ...) or path.

    By default the first malformed row stops the load with `file:line` and what is wrong. With
    `skip_invalid`, malformed rows are counted in `report` and written to `rejects_path`.
    Problems with identical content are merged (the first is kept) with a warning.
    """
    if kind is not None and kind not in KINDS:
        raise RecordError(f"--kind {kind}: expected one of {', '.join(KINDS)}")
    report = report if report is not None else LoadReport()
    name = str(source)
    if name in SHIPPED:
        shipped = SHIPPED[name]
        path = shipped_path("data", shipped.file)
        rows = ((n, shipped.convert(r)) for n, r in read_jsonl(path) if shipped.keep(r))
        label = str(path)
    else:
        raw_rows, label = _rows(name)
        if Path(name).suffix.lower() in (".jsonl", ".json"):
            raw_rows = read_jsonl(name, skip_invalid=skip_invalid, rejects=report.rejects)
        rows = ((n, map_fields(r, mapping, kind)) for n, r in raw_rows)
    problems: list[Problem] = []
    by_id: dict[str, int] = {}
    by_content: dict[str, str] = {}
    for number, row in rows:
        where = f"{label}:{number}"
        try:
            if "prompt" not in row:
                aliases = ", ".join(FIELD_ALIASES["prompt"][1:])
                raise RecordError(f"{where}: missing field 'prompt' (or a column named {aliases}, or --map prompt=COLUMN)")
            problem = from_dict(Problem, row, where=where)
        except RecordError as err:
            if not skip_invalid:
                raise
            report.rejects.append(str(err))
            continue
        digest = content_id(problem.prompt, problem.kind)
        if digest in by_content:
            report.duplicates += 1
            log.warning("%s: problem %r repeats problem %r; merged into the first", where, problem.id, by_content[digest])
            continue
        if problem.id in by_id:
            error = f"{where}: field 'id': {problem.id!r} already used by a different problem on line {by_id[problem.id]}"
            if not skip_invalid:
                raise RecordError(error)
            report.rejects.append(error)
            continue
        by_content[digest] = problem.id
        by_id[problem.id] = number
        problems.append(problem)
    if not problems and not report.rejects:
        raise RecordError(f"{label}: no problems (the file is empty)")
    if report.rejects:
        log.warning("%s: skipped %d invalid rows", label, len(report.rejects))
        if rejects_path is not None:
            write_jsonl(rejects_path, ({"error": message} for message in report.rejects))
    return problems


def fingerprint(problems: list[Problem]) -> str:
    """A short hash of a problem set's ids and prompts, recorded in run manifests."""
    digest = hashlib.sha256()
    for problem in problems:
        digest.update(problem.id.encode())
        digest.update(b"\x00")
        digest.update(prompt_text(problem).encode())
        digest.update(b"\x01")
    return digest.hexdigest()[:16]
