"""Find the final answer in a completion: the answer part (after `</think>` or inside `<answer>` tags),
then the last `\\boxed{}`/`\\fbox{}`, a "final answer is ..." phrase, or the last number.
"""

from __future__ import annotations

import re

ANSWER_FORMATS = ("after_think", "answer_tags")

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FINAL_ANSWER = re.compile(r"final answer is[:\s]*(.+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_BOX = re.compile(r"\\(?:boxed|fbox)\s*")


def answer_part(content: str, answer_format: str = "after_think") -> str | None:
    """The part of a completion that holds the final answer, or None when there is none.

    "after_think": the text after the last `</think>` (all of it when the backend already split
    the reasoning off); "answer_tags": the inside of the last `<answer>...</answer>` (R1-Zero).

    >>> answer_part("<think>x</think>\\n\\nThe answer is 4.")
    '\\n\\nThe answer is 4.'
    >>> answer_part("<think>2+2</think> <answer> 4 </answer>", "answer_tags")
    '4'
    >>> answer_part("no tags", "answer_tags") is None
    True
    """
    if answer_format == "after_think":
        return content.rsplit("</think>", 1)[-1]
    if answer_format == "answer_tags":
        found = _ANSWER_TAG.findall(content)
        return found[-1].strip() if found else None
    raise ValueError(f"answer_format: expected one of {', '.join(ANSWER_FORMATS)}, got {answer_format!r}")


def last_boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{...}` or `\\fbox{...}` (braces balanced), or None.

    >>> last_boxed(r"so \\boxed{1} or rather \\boxed{\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    >>> last_boxed(r"\\boxed 7") , last_boxed(r"\\boxed{unclosed") is None
    ('7', True)
    """
    for match in reversed(list(_BOX.finditer(text))):
        start = match.end()
        if start < len(text) and text[start] == "{":
            depth = 0
            for i in range(start, len(text)):
                if text[i] == "{":
                    depth += 1
                elif text[i] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[start + 1 : i].strip()
            continue
        # `\boxed 7`: the token after a space.
        token = re.match(r"[^\s$.,]+", text[start:])
        if token and match.group(0).endswith(" "):
            return token.group(0)
    return None


def last_number(text: str) -> str | None:
    """The last number in `text`, thousands separators removed (GSM8K style).

    >>> last_number("She pays $1,200 in total, then 3.5 more.")
    '3.5'
    >>> last_number("no digits") is None
    True
    """
    found = _NUMBER.findall(text)
    if not found:
        return None
    return found[-1].replace(",", "").rstrip(".")


def extract_math_answer(content: str, last_number_fallback: bool = False) -> str | None:
    """The final answer of a math completion's answer part, or None.

    Order: the last `\\boxed{}`/`\\fbox{}`; then "final answer is ..."; then, with
    `last_number_fallback` (GSM8K-style sets), the last number.

    >>> extract_math_answer(r"Thus $x = \\boxed{\\dfrac{3}{4}}$.")
    '\\\\dfrac{3}{4}'
    >>> extract_math_answer("The final answer is $42$.")
    '42'
    >>> extract_math_answer("So she has 18 eggs.", last_number_fallback=True)
    '18'
    """
    boxed = last_boxed(content)
    if boxed is not None:
        return boxed
    phrases = _FINAL_ANSWER.findall(content)
    if phrases:
        phrase = phrases[-1].strip().splitlines()[0].strip()
        phrase = phrase.rstrip(".").strip()
        if phrase.startswith("$") and phrase.endswith("$") and len(phrase) > 1:
            phrase = phrase.strip("$").strip()
        if phrase:
            return phrase
    if last_number_fallback:
        return last_number(content)
    return None
