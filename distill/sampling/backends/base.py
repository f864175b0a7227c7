"""The protocol every backend meets: a list of requests in, completions out as each one finishes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from distill.records import Message
from distill.sampling.config import SamplingConfig


@dataclass
class Request:
    """Some samples of one problem: its chat messages and the sample indices still wanted."""

    problem_id: str
    messages: list[Message]
    sample_indices: list[int]


@dataclass
class Completion:
    """One finished sample as a backend returns it, before it is split and stored."""

    problem_id: str
    sample_index: int
    text: str
    finish_reason: str | None
    reasoning: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seed: int | None = None


class Backend(Protocol):
    """Generates completions; `stream` yields them in completion order, any order across requests."""

    name: str

    def stream(self, requests: Sequence[Request], config: SamplingConfig) -> Iterator[Completion]:
        """Yield one Completion per requested sample index, as each finishes."""
        ...

    def close(self) -> None:
        """Release the engine, clients and threads."""
        ...


def sample_seed(seed: int, *parts: object) -> int:
    """A seed derived from the run seed and a key, stable across processes and Python versions.

    >>> sample_seed(0, "p1", 0) == sample_seed(0, "p1", 0) != sample_seed(1, "p1", 0)
    True
    """
    digest = hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
