"""`distill import`: an existing trace dataset as a run directory (problems + samples), so public
corpora can be re-verified and re-filtered with the same commands.

Layouts understood, per row:
- OpenR1-Math: `problem`, `answer`, `solution` and `generations` (a list of completions; one sample each);
- conversational: `messages` (`role`/`content`) or ShareGPT `conversations` (`from`/`value`), as in
  OpenThoughts and Bespoke-Stratos (whose `<|begin_of_thought|>`/`<|begin_of_solution|>` markers are
  turned into the think split);
- prompt/completion: `prompt` (text or messages) and `completion` (text or messages), with an optional
  `reasoning`/`reasoning_content` column.
Problem fields come through the problem loader's `map_fields` (aliases and `--map FIELD=COLUMN`);
`--map` also names the trace columns: `messages=`, `completion=`, `reasoning=`, `teacher=`.

The run directory has the layout of every run (`distill.rundir`): manifest.json (with the problem set
and its fingerprint), samples/shard-0-of-1.jsonl (each sample with the prompt it answered) and
problems.jsonl.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from distill.errors import DistillError, RecordError
from distill.jsonl import write_jsonl
from distill.paths import public_name
from distill.problems import PROBLEM_FIELDS, fingerprint, map_fields, read_rows
from distill.records import SCHEMA_VERSION, Problem, Sample, from_dict, prompt_text
from distill.rundir import RunDir
from distill.text import split_completion

log = logging.getLogger(__name__)

TRACE_FIELDS = ("messages", "completion", "reasoning", "teacher")
TRACE_ALIASES: dict[str, tuple[str, ...]] = {
    "messages": ("messages", "conversations", "conversation"),
    "completion": ("generations", "completion", "completions", "response", "output"),
    "reasoning": ("reasoning_content", "reasoning"),
    "teacher": ("teacher", "model", "generator"),
}
# Bespoke-Stratos / OpenThoughts wrap the thought and the solution in these markers.
_STRATOS = re.compile(r"<\|begin_of_thought\|>(.*?)(<\|end_of_thought\|>|$)(.*)", re.S)
_SOLUTION = re.compile(r"<\|begin_of_solution\|>(.*?)(<\|end_of_solution\|>|$)", re.S)


def rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """`(row_number, row)` of a JSONL, Parquet or CSV file or a saved `datasets` directory (its train split)."""
    return read_rows(path, splits=("train",))


def split_trace(text: str, reasoning: str | None = None) -> tuple[str, str, bool]:
    """`(reasoning, content, think_closed)` of a completion, `<think>` tags or Stratos markers.

    >>> split_trace("<|begin_of_thought|>\\n\\nadd\\n\\n<|end_of_thought|>\\n\\n<|begin_of_solution|>\\n\\n4\\n\\n<|end_of_solution|>")
    ('add', '4', True)
    >>> split_trace("<think>\\nadd\\n</think>\\n\\nThe answer is 4.")
    ('add', 'The answer is 4.', True)
    """
    match = _STRATOS.match(text.strip())
    if reasoning is None and match:
        rest = match.group(3)
        solution = _SOLUTION.search(rest)
        content = solution.group(1) if solution else rest
        return match.group(1).strip(), content.strip(), bool(match.group(2))
    return split_completion(text, reasoning)


def _column(row: Mapping[str, Any], name: str, mapping: Mapping[str, str]) -> tuple[str | None, Any]:
    if name in mapping:
        return mapping[name], row.get(mapping[name])
    for column in TRACE_ALIASES[name]:
        if row.get(column) is not None:
            return column, row[column]
    return None, None


def _turns(messages: Any, where: str) -> list[dict[str, str]]:
    """Messages in `role`/`content` form, from either that or ShareGPT's `from`/`value`."""
    if not isinstance(messages, list):
        raise RecordError(f"{where}: field 'messages': expected a list of messages, got {type(messages).__name__}")
    roles = {"human": "user", "gpt": "assistant", "user": "user", "assistant": "assistant", "system": "system"}
    turns = []
    for m in messages:
        if not isinstance(m, dict):
            raise RecordError(f"{where}: field 'messages': expected objects, got {type(m).__name__}")
        role = roles.get(str(m.get("role", m.get("from", ""))).lower())
        content = m.get("content", m.get("value"))
        if role is None or not isinstance(content, str):
            raise RecordError(f"{where}: field 'messages': each message needs a role (or from) and text content")
        turns.append({"role": role, "content": content})
    return turns


def parse_row(row: dict[str, Any], mapping: Mapping[str, str], kind: str,
              where: str) -> tuple[dict[str, Any], list[str], str | None, str | None, list[dict[str, str]] | None]:
    """A row as (problem fields, completions, reasoning column value, teacher column value, the prompt
    messages the row records: its system and user turns, or None)."""
    messages_col, messages = _column(row, "messages", mapping)
    completion_col, completion = _column(row, "completion", mapping)
    reasoning_col, reasoning = _column(row, "reasoning", mapping)
    teacher_col, teacher = _column(row, "teacher", mapping)
    used = {c for c in (messages_col, completion_col, reasoning_col, teacher_col) if c}
    problem_row = {k: v for k, v in row.items() if k not in used}
    prompt = problem_row.get("prompt")
    if isinstance(prompt, list):  # TRL prompt/completion with conversational prompts
        problem_row["prompt"] = "\n".join(t["content"] for t in _turns(prompt, where) if t["role"] == "user")
    prompt_messages: list[dict[str, str]] | None = None
    if isinstance(prompt, list):
        prompt_messages = [t for t in _turns(prompt, where) if t["role"] in ("system", "user")]
    completions: list[str] = []
    if completion is not None:
        if isinstance(completion, str):
            completions = [completion]
        elif isinstance(completion, list) and all(isinstance(c, str) for c in completion):
            completions = list(completion)
        else:
            completions = [t["content"] for t in _turns(completion, where) if t["role"] == "assistant"]
    if messages is not None:
        turns = _turns(messages, where)
        last_user = max((i for i, t in enumerate(turns) if t["role"] == "user"), default=-1)
        prompt_messages = [t for t in turns[:last_user + 1] if t["role"] in ("system", "user")] or None
        users = [t["content"] for t in turns if t["role"] == "user"]
        if users and not any(a in problem_row for a in ("prompt", "problem", "question", mapping.get("prompt", "prompt"))):
            problem_row["prompt"] = users[-1]
        system = [t["content"] for t in turns if t["role"] == "system"] or [problem_row.pop("system", None)]
        if system[0]:
            problem_row.setdefault("meta", {})
            problem_row["meta"] = {**problem_row["meta"], "system": system[0]}
            if prompt_messages is not None and not any(t["role"] == "system" for t in prompt_messages):
                # A system prompt kept in a column of its own (Bespoke-Stratos) was part of what the teacher saw.
                prompt_messages.insert(0, {"role": "system", "content": system[0]})
        if not completions:
            completions = [t["content"] for t in turns if t["role"] == "assistant"][-1:]
    problem_row.pop("system", None)
    if not completions:
        raise RecordError(f"{where}: no completion: expected generations, completion, or messages with an assistant "
                          "turn (or --map completion=COLUMN)")
    problem_mapping = {k: v for k, v in mapping.items() if k in PROBLEM_FIELDS}
    fields = map_fields(problem_row, problem_mapping, kind)
    return (fields, completions, reasoning if isinstance(reasoning, str) else None,
            teacher if isinstance(teacher, str) else None, prompt_messages)


def import_traces(path: str | Path, out_dir: str | Path, mapping: Mapping[str, str] | None = None, kind: str = "math",
                  teacher: str | None = None) -> dict[str, Any]:
    """Write a run directory from a trace dataset; returns `{"problems": n, "samples": m, "out": dir}`.

    Each sample records the prompt the trace answered: the row's own system and user turns when it has
    messages, else the problem's prompt as a user turn.
    """
    mapping = dict(mapping or {})
    unknown = [k for k in mapping if k not in PROBLEM_FIELDS and k not in TRACE_FIELDS]
    if unknown:
        raise RecordError(f"--map {unknown[0]}=...: not a problem field or trace column "
                          f"({', '.join(PROBLEM_FIELDS + TRACE_FIELDS)})")
    run = RunDir(out_dir)
    if run.is_run() or run.shard_files():
        raise DistillError(f"{run.path}: already a run directory; import into a new --out directory")
    problems: dict[str, Problem] = {}
    counts: dict[str, int] = {}
    total = 0
    name = teacher or f"import:{Path(path).name}"
    writer = run.open_shard((0, 1))
    try:
        for number, row in rows(path):
            where = f"{path}:{number}"
            fields, completions, reasoning, row_teacher, prompt = parse_row(row, mapping, kind, where)
            problem = from_dict(Problem, fields, where=where)
            problems.setdefault(problem.id, problem)
            # OpenR1-Math keeps each generation's finish reason in a parallel list.
            finish = row.get("finish_reasons")
            finish = finish if isinstance(finish, list) and len(finish) == len(completions) else [None] * len(completions)
            for text, reason in zip(completions, finish, strict=True):
                thought, content, closed = split_trace(text, reasoning)
                index = counts.get(problem.id, 0)
                counts[problem.id] = index + 1
                writer.write(Sample(problem.id, index, thought, content, teacher=teacher or row_teacher or name,
                                    think_closed=closed, finish_reason=reason if isinstance(reason, str) else None,
                                    prompt=prompt or [{"role": "user", "content": prompt_text(problem)}]))
                total += 1
    finally:
        writer.close()
    problem_list = list(problems.values())
    write_jsonl(run.path / "problems.jsonl", problem_list)
    fp = fingerprint(problem_list)
    run.write_manifest({
        "schema_version": SCHEMA_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "imported_from": public_name(path), "teacher": {"name": name, "model": name},
        "backend": "import", "sampling": {}, "shards": 1,
        # Relative to the run directory, so the run stays valid when it is moved.
        "problems": {"source": "problems.jsonl", "fingerprint": fp, "count": len(problem_list)},
        "problems_fingerprint": fp, "local": {"imported_from": str(Path(path).resolve())},
    })
    log.info("%s: %d samples of %d problems imported into %s", path, total, len(problem_list), run.path)
    return {"problems": len(problem_list), "samples": total, "out": str(run.path)}
