"""The code verifier: program extraction, the three test types and the reasons it gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.problems import load_problems
from distill.records import Problem, Sample
from distill.verify import verify_sample
from distill.verify.code import extract_program
from distill.verify.sandbox import Limits

ASSETS = Path(__file__).resolve().parent / "assets"
FAST = Limits(timeout=3.0)


def fenced(program: str) -> str:
    return f"Here is my solution.\n\n```python\n{program}\n```\n"


@pytest.fixture(scope="module")
def stdio_problems() -> dict[str, Problem]:
    return {p.id: p for p in load_problems(str(ASSETS / "stdio_problems.jsonl"))}


SUM_RIGHT = "t = int(input())\nfor _ in range(t):\n    a, b = map(int, input().split())\n    print(a + b)\n"
SUM_SPACED = ("import sys\nd = sys.stdin.read().split()\nt = int(d[0])\n"
              "print('\\n'.join(str(int(d[1+2*i]) + int(d[2+2*i])) + '   ' for i in range(t)) + '\\n\\n')\n")
SUM_WRONG = "t = int(input())\nfor _ in range(t):\n    a, b = map(int, input().split())\n    print(a + b + (a < 0))\n"
SUM_DEV_STDIN = ("d = open('/dev/stdin').read().split()\nout = open('/dev/stdout', 'w')\n"
                 "out.write('\\n'.join(str(int(d[1+2*i]) + int(d[2+2*i])) for i in range(int(d[0]))))\nexit(0)\n")
REVERSE_RIGHT = "print(' '.join(input().split()[::-1]))\n"
REVERSE_CRASH = "w = input().split()\nassert len(w) > 1\nprint(' '.join(w[::-1]))\n"
REVERSE_HANG = "w = input().split()\nwhile len(w) == 3:\n    pass\nprint(' '.join(w[::-1]))\n"


@pytest.mark.parametrize("pid, program, correct, reason, passed", [
    ("stdio-sum", SUM_RIGHT, True, None, 3),
    ("stdio-sum", SUM_SPACED, True, None, 3),  # whitespace differences do not matter
    ("stdio-sum", SUM_DEV_STDIN, True, None, 3),  # /dev/stdin and /dev/stdout reopen, exit() exists
    ("stdio-sum", SUM_WRONG, False, "wrong_answer", 2),
    ("stdio-reverse", REVERSE_RIGHT, True, None, 4),
    ("stdio-reverse", REVERSE_CRASH, False, "runtime_error", 3),
    ("stdio-reverse", REVERSE_HANG, False, "timeout", 1),
])
def test_stdio(stdio_problems: dict[str, Problem], monkeypatch: pytest.MonkeyPatch, pid: str, program: str,
               correct: bool, reason: str | None, passed: int) -> None:
    monkeypatch.setattr("distill.verify.code.LIMITS", FAST)
    problem = stdio_problems[pid]
    verdict = verify_sample(problem, Sample(pid, 0, "", fenced(program)))
    assert (verdict.correct, verdict.reason) == (correct, reason), verdict.details
    total = len(problem.tests["cases"])
    assert verdict.details["passed"] == passed
    assert verdict.details["passed_fraction"] == pytest.approx(passed / total)


def asserts_problem() -> Problem:
    return Problem(id="a", prompt="Write add(a, b).", kind="code",
                   tests={"type": "asserts", "setup": "", "entry_point": "add",
                          "asserts": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"]})


@pytest.mark.parametrize("program, correct, reason, passed", [
    ("def add(a, b):\n    return a + b", True, None, 3),
    ("def add(a, b):\n    return a + b if a > 0 else 7", False, "wrong_answer", 2),
    ("def add(a, b):\n    return a / (b - 1) * 0 + a + b", False, "runtime_error", 2),
    ("import sys\nsys.exit(0)", False, "runtime_error", 0),  # exiting early is not passing
    ("def add(a, b):\n    x = [0] * (4 * 1024 ** 3)\n    return a + b", False, "memory", 0),
    ("def add(a, b):\n    while True:\n        pass", False, "timeout", 0),
])
def test_asserts(monkeypatch: pytest.MonkeyPatch, program: str, correct: bool, reason: str | None, passed: int) -> None:
    monkeypatch.setattr("distill.verify.code.LIMITS", Limits(timeout=3.0, memory_mb=1024))
    verdict = verify_sample(asserts_problem(), Sample("a", 0, "", fenced(program)))
    assert (verdict.correct, verdict.reason) == (correct, reason), verdict.details
    assert verdict.details["passed"] == passed and verdict.details["total"] == 3


def test_a_forged_verdict_line_does_not_pass() -> None:
    forged = 'print("\\nPASS {\\"stage\\": \\"done\\"}")\nimport os\nos._exit(0)'
    verdict = verify_sample(asserts_problem(), Sample("a", 0, "", fenced(forged)))
    assert verdict.correct is False


def test_no_code() -> None:
    verdict = verify_sample(asserts_problem(), Sample("a", 0, "", "I would add the numbers."))
    assert (verdict.correct, verdict.reason) == (False, "no_code")
    truncated = Sample("a", 0, "def add", "", think_closed=False)
    assert verify_sample(asserts_problem(), truncated).reason == "no_code"


def test_humaneval_completion_style_answer_gets_the_prompt() -> None:
    problem = next(p for p in load_problems("humaneval") if p.id.endswith("/0") or p.id.endswith("-0"))
    body = problem.answer[len(problem.prompt):]
    verdict = verify_sample(problem, Sample(problem.id, 0, "", fenced(body)))
    assert verdict.correct is True, verdict.details


def test_extract_program_prefers_the_last_python_block() -> None:
    text = "```python\nx = 1\n```\nOutput:\n```text\n1\n```\nBetter:\n```python3\nx = 2\n```\nDone."
    assert extract_program(text) == "x = 2\n"
    assert extract_program("```python\n\n```") is None
    assert extract_program("def f():\n    return 1\n") == "def f():\n    return 1\n"  # bare code
    assert extract_program("```python\ndef f(): return 1") is None  # truncated fence
