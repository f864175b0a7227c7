"""The records every stage reads and writes: Problem, Sample (with its Verdict) and CorpusRow.

Records are plain dataclasses that round-trip through JSONL, Parquet and `datasets`. Validation
errors name the file, the line and the field, so a user can fix the input without guessing.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from distill.errors import RecordError

SCHEMA_VERSION = 2
"""Bumped when a field changes meaning or is removed; stored in every run manifest."""

Kind = Literal["math", "code", "choice", "exact"]
KINDS: tuple[str, ...] = typing.get_args(Kind)
TEST_TYPES = ("check", "asserts", "stdio")
Message = dict[str, str]


@dataclass
class Problem:
    """One problem: a prompt, its reference answer and how to check an answer (`kind`)."""

    id: str
    prompt: str | list[Message]
    kind: Kind = "math"
    answer: str | None = None
    solution: str | None = None
    tests: dict[str, Any] | None = None
    choices: list[str] | None = None
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    """One teacher completion, keyed by `(problem_id, sample_index)`; verdict fields are added by `verify`."""

    problem_id: str
    sample_index: int
    reasoning: str
    content: str
    finish_reason: str | None = None
    teacher: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seed: int | None = None
    think_closed: bool | None = None
    # The chat messages exactly as the teacher saw them (recorded at sampling; later stages never rebuild them).
    prompt: list[Message] | None = None
    # Where this sample's side records sit in its shard's side files: {kind: {"file": name, "offset": o, "length": n}}.
    side: dict[str, dict[str, int | str]] | None = None
    # Verdict, filled by the verifiers.
    correct: bool | None = None
    extracted: str | None = None
    verifier: str | None = None
    reason: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        """The identity under which a completion is written exactly once."""
        return (self.problem_id, self.sample_index)


@dataclass
class Verdict:
    """A verifier's judgement of one sample: `correct` is None when it cannot be judged."""

    correct: bool | None
    reason: str | None = None
    extracted: str | None = None
    verifier: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class CorpusRow:
    """One training example in TRL's conversational format plus its provenance."""

    messages: list[Message]
    problem_id: str
    source: str | None = None
    teacher: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    pass_rate: float | None = None
    # For token-level distillation: the teacher's generated token ids (KD trains on these, never on re-tokenized
    # text) and where its logprob record sits: {"run": name, "file": side file, "offset": o, "length": n}.
    token_ids: list[int] | None = None
    logprobs: dict[str, int | str] | None = None


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", None) or str(tp)


def matches_type(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return any(matches_type(value, arg) for arg in typing.get_args(tp))
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return isinstance(value, list) and all(matches_type(v, item) for v in value)
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp) or (Any, Any)
        return isinstance(value, dict) and all(
            matches_type(k, key_tp) and matches_type(v, value_tp) for k, v in value.items()
        )
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


R = typing.TypeVar("R", Problem, Sample, CorpusRow, Verdict)


def from_dict(cls: type[R], data: Any, where: str = "<record>", extra: str = "error") -> R:
    """Build a record of type `cls` from a dict, checking every field's type.

    `where` (for example `problems.jsonl:3`) starts every error message. `extra` says what to do
    with unknown keys: `error`, or `ignore` for stages that pass extra columns through.

    >>> from_dict(Problem, {"id": "p1", "prompt": "1+1?", "answer": "2"}).answer
    '2'
    >>> from_dict(Problem, {"id": "p1", "prompt": 5}, where="a.jsonl:3")
    Traceback (most recent call last):
    ...
    distill.errors.RecordError: a.jsonl:3: field 'prompt': expected str or list, got int (5)
    """
    if not isinstance(data, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(data).__name__}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in hints]
    if unknown and extra == "error":
        raise RecordError(f"{where}: unknown field {unknown[0]!r} for {cls.__name__} (known: {', '.join(names)})")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecordError(f"{where}: missing field {f.name!r} for {cls.__name__}")
            continue
        value = data[f.name]
        tp = hints[f.name]
        if not matches_type(value, tp):
            shown = repr(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise RecordError(
                f"{where}: field {f.name!r}: expected {type_name(tp)}, got {type(value).__name__} ({shown})"
            )
        values[f.name] = value
    record = cls(**values)
    if isinstance(record, Problem):
        _check_problem(record, where)
    return record


def _check_problem(problem: Problem, where: str) -> None:
    if not problem.id:
        raise RecordError(f"{where}: field 'id': must not be empty")
    if isinstance(problem.prompt, str) and not problem.prompt.strip():
        raise RecordError(f"{where}: field 'prompt': must not be empty")
    if problem.tests is not None:
        test_type = problem.tests.get("type")
        if test_type not in TEST_TYPES:
            raise RecordError(f"{where}: field 'tests.type': expected one of {', '.join(TEST_TYPES)}, got {test_type!r}")
    if problem.kind == "code" and problem.tests is None:
        raise RecordError(f"{where}: field 'tests': a code problem needs typed tests")
    if problem.kind == "choice" and not problem.choices:
        raise RecordError(f"{where}: field 'choices': a choice problem needs its choices")


_ATOMS = (int, float, str, bool, type(None))


def _plain(value: Any) -> Any:
    """`dataclasses.asdict`'s conversion without its `copy.deepcopy` of every str and int leaf: a stored
    sample converts in 16 us instead of asdict's 61 (this machine), and the store converts every sample."""
    if type(value) in _ATOMS:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return type(value)(v if type(v) in _ATOMS else _plain(v) for v in value)
    if isinstance(value, dict):
        return {k: v if type(v) in _ATOMS else _plain(v) for k, v in value.items()}
    return copy.deepcopy(value)


def to_dict(record: Any) -> dict[str, Any]:
    """A record as a plain JSON-serialisable dict (dataclasses converted, containers copied)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return _plain(record)
    return dict(record)


def prompt_text(problem: Problem) -> str:
    """The user-visible text of a problem, whether its prompt is a string or chat messages."""
    if isinstance(problem.prompt, str):
        return problem.prompt
    return "\n".join(m.get("content", "") for m in problem.prompt if m.get("role") == "user")
