"""Benchmarks for `distill eval`: the shipped sets by name, any problem file, and two layouts that
need their columns mapped: GPQA-Diamond (multiple choice) and LiveCodeBench (stdin/stdout code).

A GPQA or LiveCodeBench file is recognised by its columns, in the layout the original datasets
publish (GPQA's CSV: `Question`, `Correct Answer`, `Incorrect Answer 1-3`, `Record ID`;
LiveCodeBench's JSONL: `question_id`, `question_content`, `public_test_cases`, ...). The names
`gpqa-diamond` and `livecodebench` load them from the Hugging Face hub when it is reachable.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.errors import RecordError
from distill.problems import SHIPPED, load_problems, read_rows
from distill.records import Problem, from_dict

log = logging.getLogger(__name__)

LETTERS = "ABCD"
GPQA_COLUMNS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
LCB_COLUMNS = ("question_content", "public_test_cases")
# Hub sources: GPQA is gated (accept its terms and log in); LiveCodeBench's loading script is gone,
# so its release files are read as JSON (all releases: several GB; pass one downloaded file instead
# to evaluate a single release).
LCB_FILES = [f"hf://datasets/livecodebench/code_generation_lite/{name}.jsonl"
             for name in ("test", "test2", "test3", "test4", "test5", "test6")]
HUB = {
    "gpqa-diamond": ("Idavidrein/gpqa", "gpqa_diamond"),
    "livecodebench": ("json", LCB_FILES),
}

# The prompt of OpenAI's simple-evals for GPQA, which the R1 report follows.
GPQA_TEMPLATE = (
    "Answer the following multiple choice question. The last line of your response should be of the "
    "following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by step "
    "before answering.\n\n{question}\n\nA) {A}\nB) {B}\nC) {C}\nD) {D}"
)
# LiveCodeBench's own prompt for stdin/stdout problems (without a system message, per R1's protocol).
LCB_TEMPLATE = (
    "You will be given a question (problem specification) and will generate a correct Python program that "
    "matches the specification and passes all tests.\n\nQuestion: {question}\n\nRead the inputs from stdin, "
    "solve the problem and write the answer to stdout (do not directly test on the sample inputs). Enclose "
    "your code within delimiters as follows.\n```python\n# YOUR CODE HERE\n```"
)


def bench_name(spec: str) -> str:
    """The directory name of a benchmark: a shipped name as is, a path by its file stem.

    >>> bench_name("math500"), bench_name("data/gpqa_diamond.csv"), bench_name("mbpp:all")
    ('math500', 'gpqa_diamond', 'mbpp-all')
    """
    if spec in SHIPPED or spec in HUB:
        return spec.replace(":", "-")
    path = Path(spec)
    return (path.stem if path.suffix else path.name) or "bench"


def gpqa_problem(row: dict[str, Any], where: str, seed: int = 0) -> Problem:
    """A GPQA row as a choice problem: the four answers shuffled with a seed per question, answer a letter."""
    missing = [c for c in GPQA_COLUMNS if not str(row.get(c) or "").strip()]
    if missing:
        raise RecordError(f"{where}: field {missing[0]!r}: missing or empty in a GPQA row")
    question = str(row["Question"]).strip()
    record_id = str(row.get("Record ID") or "").strip()
    options = [str(row[c]).strip() for c in GPQA_COLUMNS[1:]]
    order = list(range(4))
    random.Random(f"{seed}:{record_id or question}").shuffle(order)
    choices = [options[i] for i in order]
    answer = LETTERS[order.index(0)]
    text = GPQA_TEMPLATE.format(question=question, **dict(zip(LETTERS, choices, strict=True)))
    meta = {k: row[k] for k in ("Subdomain", "High-level domain") if row.get(k)}
    return from_dict(Problem, {"id": record_id or f"gpqa-{where.rsplit(':', 1)[-1]}", "prompt": text, "kind": "choice",
                               "answer": answer, "choices": choices, "source": "gpqa-diamond", "meta": meta}, where=where)


def _test_cases(value: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise RecordError(f"{where}: field 'public_test_cases': not JSON ({err.msg})") from err
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        raise RecordError(f"{where}: field 'public_test_cases': expected a list of objects")
    return value


def livecodebench_problem(row: dict[str, Any], where: str) -> Problem | None:
    """A LiveCodeBench row as a stdio code problem, from its public stdin tests (None for call-based ones).

    Private tests ship pickled and compressed; unpickling downloaded data can run code, so only the
    public tests are used. LeetCode-style (`functional`) problems need a call harness and are skipped.
    """
    cases = _test_cases(row.get("public_test_cases"), where)
    stdio = [{"input": str(c.get("input", "")), "output": str(c.get("output", ""))}
             for c in cases if c.get("testtype", "stdin") == "stdin"]
    if not stdio:
        return None
    question = str(row.get("question_content") or "").strip()
    if not question:
        raise RecordError(f"{where}: field 'question_content': missing or empty")
    meta = {k: row[k] for k in ("question_title", "platform", "difficulty", "contest_date") if row.get(k)}
    return from_dict(Problem, {"id": str(row.get("question_id") or where), "prompt": LCB_TEMPLATE.format(question=question),
                               "kind": "code", "tests": {"type": "stdio", "cases": stdio},
                               "source": "livecodebench", "meta": meta}, where=where)


def _convert(rows: Iterator[tuple[int, dict[str, Any]]], label: str, layout: str, seed: int) -> list[Problem]:
    problems: list[Problem] = []
    skipped = 0
    for number, row in rows:
        where = f"{label}:{number}"
        if layout == "gpqa":
            problems.append(gpqa_problem(row, where, seed))
        else:
            problem = livecodebench_problem(row, where)
            if problem is None:
                skipped += 1
            else:
                problems.append(problem)
    if skipped:
        log.warning("%s: skipped %d call-based (LeetCode) problems without stdin tests", label, skipped)
    if not problems:
        raise RecordError(f"{label}: no usable problems")
    return problems


def _layout(columns: set[str]) -> str | None:
    if set(GPQA_COLUMNS) <= columns:
        return "gpqa"
    if set(LCB_COLUMNS) <= columns:
        return "livecodebench"
    return None


def _hub_rows(name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    import os

    if any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        raise RecordError(f"{name}: the Hugging Face hub is offline; pass a local file in the dataset's layout")
    import datasets

    repo, config = HUB[name]
    try:
        if repo == "json":
            loaded = datasets.load_dataset("json", data_files=config, split="train")
        else:
            loaded = datasets.load_dataset(repo, config, split="train")
    except Exception as err:  # the hub client raises many types for "cannot reach the hub" or "gated"
        raise RecordError(f"{name}: loading it from the hub failed (offline, or a gated dataset?): {type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}") from err
    for number, row in enumerate(loaded, start=1):
        yield number, dict(row)


def load_bench(spec: str, seed: int = 0) -> list[Problem]:
    """The problems of one benchmark: a shipped name, `gpqa-diamond`/`livecodebench` (hub), or a path.

    A path in GPQA's or LiveCodeBench's layout is mapped to choice or stdio-code problems; any other
    path loads as a problem file (`distill.problems.load_problems`).
    """
    if spec in HUB:
        return _convert(_hub_rows(spec), spec, "gpqa" if spec.startswith("gpqa") else "livecodebench", seed)
    path = Path(spec)
    if spec not in SHIPPED and path.is_file() and path.suffix.lower() in (".csv", ".jsonl", ".json", ".parquet"):
        first = next(iter(read_rows(path)), None)
        layout = _layout(set(first[1])) if first else None
        if layout is not None:
            return _convert(read_rows(path), str(path), layout, seed)
    return load_problems(spec)
