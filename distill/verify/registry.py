"""Which verifier judges a problem's samples, and judging one sample with it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from distill.records import Problem, Sample, Verdict
from distill.verify.choice import verify_choice, verify_exact
from distill.verify.code import verify_code
from distill.verify.extract import ANSWER_FORMATS
from distill.verify.math import verify_math

Verifier = Callable[[Problem, Sample, str], Verdict]

VERIFIERS: dict[str, Verifier] = {
    "math": verify_math,
    "code": verify_code,
    "choice": verify_choice,
    "exact": verify_exact,
}
"""From a problem's `kind` to the function that judges its samples: `fn(problem, sample, answer_format)`."""


def verify_sample(problem: Problem, sample: Sample, answer_format: str = "after_think",
                  unsafe_no_sandbox: bool = False) -> Verdict:
    """Judge one sample with the verifier for its problem's kind.

    Code runs in the sandbox; `unsafe_no_sandbox=True` runs it without one (see `verify_code`).

    >>> p = Problem(id="p", prompt="2+2?", answer="4")
    >>> verify_sample(p, Sample("p", 0, "2+2=4", "The answer is \\\\boxed{4}.")).correct
    True
    >>> verify_sample(Problem(id="q", prompt="Pick", kind="choice", answer="B", choices=["x", "y"]),
    ...               Sample("q", 0, "", "Answer: (A)")).reason
    'wrong_answer'
    """
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"answer_format: expected one of {', '.join(ANSWER_FORMATS)}, got {answer_format!r}")
    verifier = VERIFIERS.get(problem.kind)
    if verifier is None:
        return Verdict(None, "no_verifier", verifier=None, details={"kind": problem.kind})
    if verifier is verify_code:
        return verify_code(problem, sample, answer_format, unsafe_no_sandbox=unsafe_no_sandbox)
    return verifier(problem, sample, answer_format)


def apply_verdict(sample: Sample, verdict: Verdict) -> Sample:
    """A copy of `sample` with the verdict's fields (`correct`, `reason`, `extracted`, `verifier`) set."""
    return dataclasses.replace(sample, correct=verdict.correct, reason=verdict.reason,
                               extracted=verdict.extracted, verifier=verdict.verifier)
