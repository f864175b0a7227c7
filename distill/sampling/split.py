"""Split a completion into its reasoning (the think block) and its content (the answer part)."""

from __future__ import annotations

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def split_completion(text: str, reasoning: str | None = None) -> tuple[str, str, bool]:
    """Return `(reasoning, content, think_closed)` for a teacher's output.

    The same completion gives the same split whether the opening `<think>` is in the output, only
    the closing `</think>` is (the prompt opened the block), or the server sent the reasoning in a
    separate field (`reasoning_content` / `reasoning`). A completion whose think block never
    closes is kept whole as reasoning with `think_closed=False`, so the filter can drop it.

    >>> split_completion("<think>\\nadd\\n</think>\\n\\nThe answer is 4.")
    ('add', 'The answer is 4.', True)
    >>> split_completion("add\\n</think>\\n\\nThe answer is 4.")
    ('add', 'The answer is 4.', True)
    >>> split_completion("The answer is 4.", reasoning="add\\n")
    ('add', 'The answer is 4.', True)
    >>> split_completion("<think>\\nadd and add and")
    ('add and add and', '', False)
    """
    if reasoning is not None:
        body = text
        if THINK_CLOSE in body:  # some servers echo the block in the content as well
            body = body.split(THINK_CLOSE, 1)[1]
        return reasoning.strip(), body.strip(), True
    body = text.lstrip()
    if body.startswith(THINK_OPEN):
        body = body[len(THINK_OPEN):]
    if THINK_CLOSE not in body:
        return body.strip(), "", False
    thought, content = body.split(THINK_CLOSE, 1)
    return thought.strip(), content.strip(), True
