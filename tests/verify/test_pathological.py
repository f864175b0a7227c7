"""Pathological completions cost little: answer and code extraction are linear and capped, so that each
of these returns within the per-sample time limit, for every kind of problem: 1 MB with 10,000 unclosed
`\\boxed{`, 20,000 blank lines, and 10,000 unclosed code fences (each was quadratic somewhere before
issue #13). benchmarks/verify.py prints their times against a normal 1 MB completion.
"""

from __future__ import annotations

import time

import pytest

from distill.records import Problem, Sample
from distill.verify import verify_sample
from distill.verify.code import LIMITS, extract_program
from distill.verify.extract import answer_part, code_blocks, last_boxed
from distill.verify.math import TIME_LIMIT

UNCLOSED_BOXES = ("so \\boxed{" + "x" * 90) * 10_000
BLANK_LINES = "\n" * 20_000
UNCLOSED_FENCES = "```python " * 10_000 + "print(1)"
PATHOLOGICAL = {"unclosed_boxes": UNCLOSED_BOXES, "blank_lines": BLANK_LINES, "unclosed_fences": UNCLOSED_FENCES,
                "blank_lines_then_letter": BLANK_LINES + "B", "text_fences": "```text\nx\n```\n" * 10_000}
PROBLEMS = {
    "math": Problem(id="m", prompt="?", answer="42"),
    "choice": Problem(id="c", prompt="?", kind="choice", answer="B", choices=["a", "b"]),
    "exact": Problem(id="e", prompt="?", kind="exact", answer="42"),
    "code": Problem(id="k", prompt="?", kind="code",
                    tests={"type": "asserts", "asserts": ["assert f() == 1"], "setup": "", "entry_point": "f"}),
}


def test_the_inputs_are_what_the_issue_names() -> None:
    assert len(UNCLOSED_BOXES) == 1_000_000 and UNCLOSED_BOXES.count("\\boxed{") == 10_000
    assert BLANK_LINES.count("\n") == 20_000 and UNCLOSED_FENCES.count("```") == 10_000


@pytest.mark.parametrize("kind", list(PROBLEMS))
@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_each_verifier_returns_within_its_limit(kind: str, name: str) -> None:
    problem = PROBLEMS[kind]
    limit = LIMITS.timeout if kind == "code" else TIME_LIMIT
    content = PATHOLOGICAL[name]
    started = time.monotonic()
    # No program is extracted from any of these, so the code verifier never needs the sandbox here.
    verdict = verify_sample(problem, Sample(problem.id, 0, "", content), unsafe_no_sandbox=True)
    seconds = time.monotonic() - started
    assert seconds < limit, (kind, name, seconds)
    # The letter after the blank lines is still read as a choice; nothing else here is a right answer.
    assert verdict.correct is (kind == "choice" and name == "blank_lines_then_letter"), verdict


def test_extractors_keep_their_answers() -> None:
    assert last_boxed("\\boxed{" * 10_000 + "\\boxed{7}") == "7"
    assert last_boxed(UNCLOSED_BOXES) is None
    assert code_blocks(UNCLOSED_FENCES) == []
    assert extract_program(UNCLOSED_FENCES) is None and extract_program(BLANK_LINES) is None
    assert answer_part("<answer>" * 10_000 + "x", "answer_tags") is None
    assert answer_part("<answer>" * 10_000 + "x</answer>", "answer_tags") == "<answer>" * 9_999 + "x"
    long = "a" * 3_000_000 + "\\boxed{5}"
    assert len(answer_part(long)) == 1 << 20 and last_boxed(answer_part(long)) == "5"  # the end is kept
