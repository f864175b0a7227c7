"""Verifiers on literal strings: extraction, math equivalence, bad references, choice, exact, time limits."""

from __future__ import annotations

import threading
import time

import pytest

from distill.records import Problem, Sample
from distill.verify import VERIFIERS, answer_part, answers_equal, extract_math_answer, verify_sample
from distill.verify import math as vmath
from distill.verify.timeout import TimeLimit, call_with_time_limit


def math_problem(answer: str, source: str | None = None) -> Problem:
    return Problem(id="m", prompt="q", kind="math", answer=answer, source=source)


def judge(problem: Problem, content: str, **kwargs: object) -> tuple[bool | None, str | None, str | None]:
    verdict = verify_sample(problem, Sample(problem.id, 0, "", content), **kwargs)
    return verdict.correct, verdict.reason, verdict.extracted


def test_registry_covers_every_kind() -> None:
    from distill.records import KINDS

    assert set(VERIFIERS) == set(KINDS)


@pytest.mark.parametrize("content, expected", [
    (r"First \boxed{1}, finally \boxed{\frac{2}{3}}.", r"\frac{2}{3}"),
    (r"\fbox{7}", "7"),
    (r"nested \boxed{\left\{ 1, 2 \right\}} end", r"\left\{ 1, 2 \right\}"),
    ("The final answer is $x = 3$.", "x = 3"),
    ("So the final answer is: 12 apples", "12 apples"),
    (r"\boxed{unclosed", None),
])
def test_extract_math_answer(content: str, expected: str | None) -> None:
    assert extract_math_answer(content) == expected


def test_last_number_only_for_gsm8k_style() -> None:
    assert judge(math_problem("18", "gsm8k"), "She makes 9 * 2 = $18 every day.")[0] is True
    assert judge(math_problem("1,200"), "In total 1,200 dollars.")[0] is True  # an integer reference
    assert judge(math_problem(r"\frac{1}{2}"), "It is 1/2")[:2] == (False, "no_answer")


@pytest.mark.parametrize("reference, content", [
    (r"\frac{1}{2}", r"\boxed{0.5}"),
    ("10\\%", r"\boxed{0.1}"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{(3, \pi/2)}"),
    ("(x+1)^2", r"\boxed{x^2+2x+1}"),
    (r"\$18.90", r"\boxed{18.90}"),
    ("x=5", r"\boxed{5}"),
])
def test_math_equivalent_answers(reference: str, content: str) -> None:
    assert judge(math_problem(reference), content)[0] is True


def test_math_wrong_and_missing_answers() -> None:
    assert judge(math_problem("4"), r"\boxed{5}")[:2] == (False, "wrong_answer")
    assert judge(math_problem(r"\frac{1}{2}"), "I do not know.")[:2] == (False, "no_answer")
    truncated = Sample("m", 0, "thinking...", "", think_closed=False)
    assert verify_sample(math_problem("4"), truncated).reason == "no_answer"


def test_answer_after_think_only() -> None:
    # The boxed guess inside the reasoning does not count; only the part after </think>.
    content = r"<think>maybe \boxed{3}</think> The answer is \boxed{4}."
    assert judge(math_problem("4"), content)[0] is True
    assert judge(math_problem("3"), content)[0] is False


def test_answer_tags_format() -> None:
    content = r"<think>2+2</think> <answer>\boxed{4}</answer>"
    assert judge(math_problem("4"), content, answer_format="answer_tags")[0] is True
    assert judge(math_problem("4"), r"\boxed{4}", answer_format="answer_tags")[:2] == (False, "no_answer")
    assert answer_part("<answer>a</answer> <answer>b</answer>", "answer_tags") == "b"
    with pytest.raises(ValueError, match="answer_format"):
        verify_sample(math_problem("4"), Sample("m", 0, "", "x"), answer_format="tags")


@pytest.mark.parametrize("reference", [r"\text{}", "", "   "])
def test_unparsable_reference_is_null_not_false(reference: str) -> None:
    correct, reason, _ = judge(math_problem(reference), r"\boxed{4}")
    assert correct is None and reason == "bad_reference"


def test_answers_equal_for_voting() -> None:
    assert answers_equal(r"\frac{1}{2}", "0.5")
    assert answers_equal("x=2", "2")
    assert not answers_equal("2", "3")


def _slow(seconds: float) -> str:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return "done"


def test_time_limit_on_the_main_thread() -> None:
    started = time.monotonic()
    with pytest.raises(TimeLimit):
        call_with_time_limit(0.3, _slow, 30.0)
    assert time.monotonic() - started < 10
    assert call_with_time_limit(5.0, _slow, 0.01) == "done"


def test_time_limit_off_the_main_thread() -> None:
    outcome: list[object] = []

    def work() -> None:
        try:
            outcome.append(call_with_time_limit(0.3, _slow, 30.0))
        except TimeLimit:
            outcome.append("limited")
        outcome.append(verify_sample(math_problem(r"\frac{1}{2}"), Sample("m", 0, "", r"\boxed{0.5}")).correct)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)
    assert outcome == ["limited", True]


def test_slow_comparison_is_a_timeout_not_a_wrong_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vmath, "_judge", lambda reference, predicted: _slow(30.0))
    verdict = vmath.verify_math(math_problem("4"), Sample("m", 0, "", r"\boxed{4}"), time_limit=0.3)
    assert verdict.correct is None and verdict.reason == "timeout"


def test_repeated_calls_reuse_parsed_references() -> None:
    problem = math_problem(r"\frac{\sqrt{3}}{2}")
    vmath._parse.cache_clear()
    for _ in range(20):
        judge(problem, r"\boxed{\frac{\sqrt3}{2}}")
    info = vmath._parse.cache_info()
    assert info.misses == 2 and info.hits >= 38


@pytest.mark.parametrize("content, correct", [
    ("B", True), ("(B)", True), ("Answer: B", True), (r"\boxed{B}", True), ("The answer is (b).", True),
    ("Answer: C", False), ("(A) looks wrong, so the answer is B.", True),
])
def test_choice(content: str, correct: bool) -> None:
    problem = Problem(id="c", prompt="pick", kind="choice", answer="B", choices=["x", "y", "z", "w"])
    assert judge(problem, content)[0] is correct


def test_choice_without_a_letter_and_reference_by_text() -> None:
    problem = Problem(id="c", prompt="pick", kind="choice", answer="Paris", choices=["Lyon", "Paris"])
    assert judge(problem, "Answer: B")[0] is True
    assert judge(problem, "no idea")[:2] == (False, "no_answer")


@pytest.mark.parametrize("content, correct", [
    ("Eiffel  tower.", True), (r"\boxed{eiffel tower}", True), ("Answer: the louvre", False),
])
def test_exact(content: str, correct: bool) -> None:
    problem = Problem(id="e", prompt="?", kind="exact", answer="Eiffel Tower")
    assert judge(problem, content)[0] is correct


def test_exact_numbers_are_normalised() -> None:
    problem = Problem(id="e", prompt="?", kind="exact", answer="1000")
    assert judge(problem, "1,000.0")[0] is True
