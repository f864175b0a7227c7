"""Math answers: extract the final answer and compare it with the reference through math-verify,
under our own time limit (math-verify's alarm-based one is switched off)."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from distill.records import Problem, Sample, Verdict
from distill.verify.extract import answer_part, extract_math_answer
from distill.verify.timeout import TimeLimit, call_with_time_limit

log = logging.getLogger(__name__)

TIME_LIMIT = 5.0
"""Seconds one parse-and-compare may take before the sample is judged `timeout`."""

GSM8K_STYLE_SOURCES = ("gsm8k", "toy")
_INTEGER = re.compile(r"-?\d+")
_DOLLAR = re.compile(r"(?<!\\)\$")


class _QuietTimeoutNotice(logging.Filter):
    """Drop math-verify's "timeout is disabled" notice: we bound every call ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.grader", "math_verify.parser"):
    logging.getLogger(_name).addFilter(_QuietTimeoutNotice())


def _wrap(text: str) -> str:
    """A bare answer wrapped so that math-verify's LaTeX parser sees it (`(x+1)^2` alone parses to nothing)."""
    text = text.strip()
    if _DOLLAR.search(text) or "\\boxed" in text or "\\(" in text or "\\[" in text:
        return text
    return f"${text}$"


@functools.lru_cache(maxsize=65536)
def _parse(text: str) -> list[Any]:
    from math_verify import parse

    return parse(_wrap(text), parsing_timeout=None)  # type: ignore[arg-type]


def _parse_prediction(text: str) -> list[Any]:
    parsed = _parse(text)
    if not parsed:
        # A boxed answer that is not valid LaTeX on its own, e.g. "x = 3, y = 4": let math-verify look
        # at it as a boxed expression.
        parsed = _parse("\\boxed{" + text + "}")
    return parsed


def _judge(reference: str, predicted: str) -> str:
    """`correct`, `wrong_answer`, `bad_reference` or `unparsable` (runs under the time limit)."""
    from math_verify import verify

    gold = _parse(reference)
    if not gold:
        return "bad_reference"
    pred = _parse_prediction(predicted)
    if not pred:
        return "unparsable"
    return "correct" if verify(gold, pred, timeout_seconds=None) else "wrong_answer"


def _extract_and_judge(reference: str, part: str, last_number_fallback: bool) -> tuple[str | None, str]:
    """The extracted answer and `_judge`'s outcome (`no_answer` when nothing is extracted): both under the
    one time limit, so that a pathological completion cannot spend time before the limit applies."""
    extracted = extract_math_answer(part, last_number_fallback=last_number_fallback)
    if extracted is None:
        return None, "no_answer"
    return extracted, _judge(reference, extracted)


def _equal(a: str, b: str) -> bool:
    from math_verify import verify

    pa, pb = _parse_prediction(a), _parse_prediction(b)
    if not pa or not pb:
        return a.strip() == b.strip()
    return bool(verify(pa, pb, timeout_seconds=None))


def answers_equal(a: str, b: str, time_limit: float = TIME_LIMIT) -> bool:
    """Whether two final answers are mathematically equal (for cons@k voting); False on a timeout.

    >>> answers_equal("\\\\frac{1}{2}", "0.5"), answers_equal("2", "3")
    (True, False)
    """
    try:
        return call_with_time_limit(time_limit, _equal, a, b)
    except TimeLimit:
        log.debug("answers_equal(%r, %r) timed out", a[:50], b[:50])
        return False


def gsm8k_style(problem: Problem) -> bool:
    """Whether the last number of a completion may stand as its answer: GSM8K, the toy set, integer references."""
    if problem.source in GSM8K_STYLE_SOURCES:
        return True
    return problem.answer is not None and bool(_INTEGER.fullmatch(problem.answer.strip().replace(",", "")))


def verify_math(problem: Problem, sample: Sample, answer_format: str = "after_think",
                time_limit: float = TIME_LIMIT) -> Verdict:
    """Judge a math sample against `problem.answer`.

    >>> p = Problem(id="p", prompt="1/2?", answer="\\\\frac12")
    >>> verify_math(p, Sample("p", 0, "", "So it is \\\\boxed{0.5}.")).correct
    True
    >>> verify_math(p, Sample("p", 0, "", "So it is \\\\boxed{0.6}.")).reason
    'wrong_answer'
    """
    if not problem.answer or not problem.answer.strip():
        return Verdict(None, "bad_reference", verifier="math")
    part = answer_part(sample.content, answer_format)
    if part is None or sample.think_closed is False:
        return Verdict(False, "no_answer", verifier="math")
    try:
        extracted, outcome = call_with_time_limit(time_limit, _extract_and_judge, problem.answer, part,
                                                  gsm8k_style(problem))
    except TimeLimit:
        return Verdict(None, "timeout", verifier="math")
    if extracted is None:
        return Verdict(False, "no_answer", verifier="math")
    if outcome == "correct":
        return Verdict(True, None, extracted=extracted, verifier="math")
    if outcome == "bad_reference":
        return Verdict(None, "bad_reference", extracted=extracted, verifier="math")
    return Verdict(False, "wrong_answer", extracted=extracted, verifier="math",
                   details={"unparsable": True} if outcome == "unparsable" else {})
