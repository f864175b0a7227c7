"""Choice (a letter) and exact (a normalised string or number) answers."""

from __future__ import annotations

import re

from distill.records import Problem, Sample, Verdict
from distill.verify.extract import answer_part, last_boxed

_LETTER_PATTERNS = (
    re.compile(r"\\boxed\{\s*\(?([A-Z])\)?\s*\}"),
    re.compile(r"answer\s*(?:is|:)?\s*[:\s]*\**\(?([A-Z])\)?\**(?![A-Za-z])", re.IGNORECASE),
    # A letter alone on its line. Not `^\s*...\s*$`: with MULTILINE, `\s*` from every line start runs over
    # all the blank lines after it, which is quadratic in a run of blank lines.
    re.compile(r"^[ \t\r\f\v]*\(?([A-Z])\)?[.:)]?[ \t\r\f\v]*$", re.MULTILINE),
    re.compile(r"\(([A-Z])\)"),
)


def extract_choice(text: str, n_choices: int = 26) -> str | None:
    """The chosen letter in the usual forms, or None.

    >>> [extract_choice(t) for t in ["B", "(C)", "Answer: D", r"so \\boxed{A}.", "The answer is (B)."]]
    ['B', 'C', 'D', 'A', 'B']
    >>> extract_choice("I am not sure") is None
    True
    """
    valid = {chr(ord("A") + i) for i in range(n_choices)}
    for pattern in _LETTER_PATTERNS:
        found = [m.upper() for m in pattern.findall(text) if m.upper() in valid]
        if found:
            return found[-1]
    return None


def _reference_letter(problem: Problem) -> str | None:
    answer = (problem.answer or "").strip()
    if len(answer) == 1 and answer.upper().isalpha():
        return answer.upper()
    # The answer may be the text of a choice.
    for i, choice in enumerate(problem.choices or []):
        if normalise(choice) == normalise(answer):
            return chr(ord("A") + i)
    return extract_choice(answer)


def verify_choice(problem: Problem, sample: Sample, answer_format: str = "after_think") -> Verdict:
    """Judge a multiple-choice sample: the letter it picks against the reference letter."""
    reference = _reference_letter(problem)
    if reference is None:
        return Verdict(None, "bad_reference", verifier="choice")
    part = answer_part(sample.content, answer_format)
    if part is None or sample.think_closed is False:
        return Verdict(False, "no_answer", verifier="choice")
    letter = extract_choice(part, max(len(problem.choices or []), 1))
    if letter is None:
        return Verdict(False, "no_answer", verifier="choice")
    return Verdict(letter == reference, None if letter == reference else "wrong_answer", extracted=letter,
                   verifier="choice")


def normalise(text: str) -> str:
    """Lower case, outer punctuation and `$`/`\\text{}` removed, whitespace collapsed, numbers canonical.

    >>> normalise("  The Eiffel  Tower. "), normalise("1,000.0"), normalise("$\\\\text{Paris}$")
    ('the eiffel tower', '1000', 'paris')
    """
    text = text.strip().strip("$").strip()
    text = re.sub(r"\\text\{([^}]*)\}", r"\1", text)
    text = " ".join(text.split()).strip(" .,;:!?\"'").lower()
    number = text.replace(",", "")
    try:
        value = float(number)
    except ValueError:
        return text
    return str(int(value)) if value.is_integer() else repr(value)


def verify_exact(problem: Problem, sample: Sample, answer_format: str = "after_think") -> Verdict:
    """Judge an exact-match sample: the boxed answer, else the last line, against the reference, both normalised."""
    if not problem.answer or not problem.answer.strip():
        return Verdict(None, "bad_reference", verifier="exact")
    part = answer_part(sample.content, answer_format)
    if part is None or sample.think_closed is False or not part.strip():
        return Verdict(False, "no_answer", verifier="exact")
    extracted = last_boxed(part)
    if extracted is None:
        lines = [line for line in part.strip().splitlines() if line.strip()]
        extracted = re.sub(r"^(?:the )?(?:final )?answer(?: is)?[:\s]*", "", lines[-1].strip(), flags=re.IGNORECASE)
    correct = normalise(extracted) == normalise(problem.answer)
    return Verdict(correct, None if correct else "wrong_answer", extracted=extracted, verifier="exact")
