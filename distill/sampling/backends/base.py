"""The protocol every backend meets: a list of requests in, completions out as each one finishes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from distill.records import Message
from distill.sampling.config import SamplingConfig


@dataclass
class Request:
    """Some samples of one problem: its chat messages and the sample indices still wanted."""

    problem_id: str
    messages: list[Message]
    sample_indices: list[int]


@dataclass
class TokenLogprobs:
    """The teacher's distribution at every generated token, for token-level distillation.

    Taken from the raw distribution (temperature 1, before top-p/top-k), one row per generated token:
    the sampled token's id and logprob, and the K most likely ids with their logprobs (best first).
    Arrays are numpy: `token_ids` int32 [T], `sampled` float32 [T], `top_ids` int32 [T, K],
    `top_logprobs` float32 [T, K]. The store keeps logprobs as float16.
    """

    token_ids: Any
    sampled: Any
    top_ids: Any
    top_logprobs: Any

    @property
    def k(self) -> int:
        """How many alternatives each row holds."""
        return int(self.top_ids.shape[1]) if self.top_ids.ndim == 2 else 0

    def __len__(self) -> int:
        return int(self.token_ids.shape[0])


@dataclass
class Completion:
    """One finished sample as a backend returns it, before it is split and stored.

    `token_ids` (the generated ids) and `prompt_token_ids` are set by backends that know them;
    `logprobs` only when the sampling config asks for them (`SamplingConfig.logprobs`).
    """

    problem_id: str
    sample_index: int
    text: str
    finish_reason: str | None
    reasoning: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seed: int | None = None
    token_ids: list[int] | None = None
    prompt_token_ids: list[int] | None = None
    logprobs: TokenLogprobs | None = None


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
