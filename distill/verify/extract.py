"""Find the final answer in a completion: the answer part (after `</think>` or inside `<answer>` tags),
then the last `\\boxed{}`/`\\fbox{}`, a "final answer is ..." phrase, or the last number; and the fenced
code blocks of a code answer.

Completions are adversarial: every function here takes time linear in its input (no regex that
backtracks over a run of the input, no rescan per candidate match), and an answer part longer than
`MAX_ANSWER_CHARS` is judged on its last `MAX_ANSWER_CHARS` characters (where answers are).
"""

from __future__ import annotations

import re

ANSWER_FORMATS = ("after_think", "answer_tags")
MAX_ANSWER_CHARS = 1 << 20
"""Longest answer part looked at (its end is kept); `answer_part` applies the cap."""

_FINAL_ANSWER = re.compile(r"final answer is[:\s]*(.+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_BOX = re.compile(r"\\(?:boxed|fbox)\s*")
_BRACE = re.compile(r"[{}]")
_TOKEN = re.compile(r"[^\s$.,]+")
_LANG = re.compile(r"[ \t]*([\w+-]*)")


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
        return content.rsplit("</think>", 1)[-1][-MAX_ANSWER_CHARS:]
    if answer_format == "answer_tags":
        # The last of the non-overlapping <answer>...</answer> pairs read left to right (what a lazy
        # regex's findall gives), found with str.find: each character is looked at a bounded number of times.
        found, position = None, 0
        while (start := content.find("<answer>", position)) >= 0:
            end = content.find("</answer>", start + 8)
            if end < 0:
                break  # no closing tag after this one, so none after any later opening either
            found, position = (start + 8, end), end + 9
        return content[found[0] : found[1]].strip()[-MAX_ANSWER_CHARS:] if found else None
    raise ValueError(f"answer_format: expected one of {', '.join(ANSWER_FORMATS)}, got {answer_format!r}")


def last_boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{...}` or `\\fbox{...}` (braces balanced), or None.

    >>> last_boxed(r"so \\boxed{1} or rather \\boxed{\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    >>> last_boxed(r"\\boxed 7") , last_boxed(r"\\boxed{unclosed") is None
    ('7', True)
    >>> last_boxed(r"\\boxed{a} \\boxed{b \\boxed{c}")  # the last box that closes
    'c'
    """
    boxes = list(_BOX.finditer(text))
    if not boxes:
        return None
    closes = _closing_braces(text, {m.end() for m in boxes if text.startswith("{", m.end())})
    for match in reversed(boxes):
        start = match.end()
        if text.startswith("{", start):
            if start in closes:
                return text[start + 1 : closes[start]].strip()
            continue
        # `\boxed 7`: the token after a space.
        token = _TOKEN.match(text, start)
        if token and match.group(0).endswith(" "):
            return token.group(0)
    return None


def _closing_braces(text: str, openers: set[int]) -> dict[int, int]:
    """For each opening brace at a position in `openers`, the position of the brace that closes it.

    One pass: the depth before each pending opener is on a stack (strictly increasing, since an opener
    stays pending while the depth is above its own), and a `}` that brings the depth back to the top's
    depth closes it. Stray braces elsewhere count as they would scanning from each opener.

    >>> _closing_braces("x{a{b}c}}{", {1, 3, 9})
    {3: 5, 1: 7}
    """
    closes: dict[int, int] = {}
    if not openers:
        return closes
    pending: list[tuple[int, int]] = []  # (depth before the opener, its position)
    depth = 0
    for match in _BRACE.finditer(text, min(openers)):
        position = match.start()
        if text[position] == "{":
            if position in openers:
                pending.append((depth, position))
            depth += 1
        else:
            depth -= 1
            if pending and pending[-1][0] == depth:
                closes[pending.pop()[1]] = position
    return closes


def code_blocks(text: str) -> list[tuple[str, str]]:
    """The fenced blocks of `text` as `(language, body)`: a fence line opens (its first word is the
    language), the next ``` closes; an unclosed fence ends the search (no later fence could close).

    >>> code_blocks("a\\n```python3 x\\nprint(1)\\n```\\nb\\n``` \\nz\\n```\\n```py\\nunclosed")
    [('python3', 'print(1)\\n'), ('', 'z\\n')]
    """
    blocks, position = [], 0
    while (start := text.find("```", position)) >= 0:
        header_end = text.find("\n", start + 3)
        if header_end < 0:
            break
        close = text.find("```", header_end + 1)
        if close < 0:
            break
        language = _LANG.match(text, start + 3, header_end)
        blocks.append((language.group(1) if language else "", text[header_end + 1 : close]))
        position = close + 3
    return blocks


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
