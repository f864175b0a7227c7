"""Fixtures for the evaluation tests: the sampling engine's scripted OpenAI-compatible server
(distill.testing.scripted_server) answering from a script whose correctness is known in advance."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from distill.testing.scripted_server import Fault, ScriptedServer

# Per problem tag, the final answer of choice i (None: cut off inside the think block, no answer).
SCRIPT: dict[str, list[str | None]] = {
    # reference 0.5: three equivalent forms and one wrong answer -> 3/4 correct, the vote is right.
    "P1": ["\\frac{1}{2}", "1/2", "0.5", "7"],
    # reference 12: one right, a wrong answer twice, one without an answer -> 1/4, the vote is wrong.
    "P2": ["12", "13", "13", None],
    # reference 5: never solved.
    "P3": ["4", "4", "6", "4"],
    # reference 9: always solved, in two forms.
    "P4": ["9", "9.0", "9", "9"],
}
REFERENCES = {"P1": "0.5", "P2": "12", "P3": "5", "P4": "9"}


def completion_text(answer: str | None) -> str:
    """An R1-style completion with `answer` boxed after the think block."""
    if answer is None:
        return "<think>\nLet me think about this for a long"
    return f"<think>\nI worked it out.\n</think>\n\nThe answer is $\\boxed{{{answer}}}$."


def scripted_responder(body: dict[str, Any], index: int) -> str:
    """The scripted completion for the problem tag in the prompt and the choice index."""
    text = "\n".join(str(m.get("content", "")) for m in body.get("messages") or []) or str(body.get("prompt", ""))
    match = re.search(r"\b(P\d)\b", text)
    assert match is not None and match.group(1) in SCRIPT, f"no script for {text[:60]!r}"
    return completion_text(SCRIPT[match.group(1)][index])


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    """A running scripted server; request 2 gets a 429 with Retry-After and request 3 a dropped connection."""
    faults = {2: Fault("status", 429, retry_after=0.01), 3: Fault("drop")}
    with ScriptedServer(faults=faults, responder=scripted_responder) as server:
        server.script, server.references = SCRIPT, REFERENCES  # type: ignore[attr-defined]
        yield server
