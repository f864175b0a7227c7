"""Verification: decide for every sample whether it is correct (`True`), wrong (`False`) or cannot be
judged (`None`), with a reason.

A registry maps a problem's `kind` to its verifier; `verify_sample` judges one sample in-process
(cheap to call repeatedly: parsed references are cached), `verify_samples` judges a stream over a
process pool, in input order, with bounded memory. Code runs in a bubblewrap sandbox; without one
that passes its self-test, code verification raises `SandboxUnavailable` unless the caller passes
`unsafe_no_sandbox=True`.
"""

from __future__ import annotations

from distill.verify.extract import ANSWER_FORMATS, answer_part, extract_math_answer
from distill.verify.math import answers_equal
from distill.verify.parallel import verify_samples, verify_stream
from distill.verify.registry import VERIFIERS, apply_verdict, verify_sample
from distill.verify.sandbox import SandboxUnavailable
from distill.verify.selftest import ensure_sandbox

__all__ = ["ANSWER_FORMATS", "VERIFIERS", "SandboxUnavailable", "answer_part", "answers_equal", "apply_verdict",
           "ensure_sandbox", "extract_math_answer", "verify_sample", "verify_samples", "verify_stream"]
