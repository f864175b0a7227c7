"""Verification: decide for every sample whether it is correct (`True`), wrong (`False`) or cannot be
judged (`None`), with a reason.

A registry maps a problem's `kind` to its verifier; `verify_sample` judges one sample in-process
(cheap to call repeatedly: parsed references are cached), `verify_samples` judges a stream over a
process pool, in input order, with bounded memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from distill.records import Problem, Sample, Verdict
from distill.verify.choice import verify_choice, verify_exact
from distill.verify.code import verify_code
from distill.verify.extract import ANSWER_FORMATS, answer_part, extract_math_answer
from distill.verify.math import answers_equal, verify_math

Verifier = Callable[[Problem, Sample, str], Verdict]

VERIFIERS: dict[str, Verifier] = {
    "math": verify_math,
    "code": verify_code,
    "choice": verify_choice,
    "exact": verify_exact,
}
"""From a problem's `kind` to the function that judges its samples: `fn(problem, sample, answer_format)`."""


def verify_sample(problem: Problem, sample: Sample, answer_format: str = "after_think") -> Verdict:
    """Judge one sample with the verifier for its problem's kind.

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
    return verifier(problem, sample, answer_format)


def apply_verdict(sample: Sample, verdict: Verdict) -> Sample:
    """A copy of `sample` with the verdict's fields (`correct`, `reason`, `extracted`, `verifier`) set."""
    return dataclasses.replace(sample, correct=verdict.correct, reason=verdict.reason,
                               extracted=verdict.extracted, verifier=verdict.verifier)


from distill.verify.parallel import verify_samples, verify_stream  # noqa: E402  (needs verify_sample above)

__all__ = ["VERIFIERS", "answer_part", "answers_equal", "apply_verdict", "extract_math_answer", "verify_sample",
           "verify_samples", "verify_stream"]
