"""What an OpenAI-compatible server sends back, checked as untrusted input: choices, usage,
`Retry-After` and error bodies. Nothing here raises on a hostile response; each problem becomes a
reason string the client retries on, and only choices with text ever reach the store."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass
class Choice:
    """One usable choice: the answer text, the reasoning when the server splits it off, and why it stopped."""

    text: str
    reasoning: str | None
    finish_reason: str | None
    raw: Any = None  # the choice object as sent (its logprobs are read by openai_logprobs)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header; HTTP dates, garbage, negative and non-finite values count as absent.

    >>> retry_after_seconds("2"), retry_after_seconds("0.5"), retry_after_seconds(None)
    (2.0, 0.5, None)
    >>> retry_after_seconds("inf"), retry_after_seconds("nan"), retry_after_seconds("-3"), retry_after_seconds("soon")
    (None, None, None, None)
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def server_message(text: str, body: Any) -> str:
    """The error message a server put in its JSON body (OpenAI's `{"error": {"message": ...}}`), or
    its raw text when the body is not JSON (`body` None).

    >>> server_message("", {"error": {"message": "Invalid key"}})
    'Invalid key'
    """
    if body is None:
        return text[:300]
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message", error) if isinstance(error, dict) else error
    return str(message)[:300]


def token_count(value: Any) -> int | None:
    """A token count from `usage`, or None when it is missing or not a non-negative integer.

    >>> token_count(12), token_count(-1), token_count("12"), token_count(True), token_count(None)
    (12, None, None, None, None)
    """
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_usage(data: dict[str, Any]) -> tuple[int | None, int | None]:
    """`(prompt_tokens, completion_tokens)` from a response's `usage`, each None when absent or invalid.

    >>> parse_usage({"usage": {"prompt_tokens": 3, "completion_tokens": 9}}), parse_usage({"usage": "lots"})
    ((3, 9), (None, None))
    """
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None, None
    return token_count(usage.get("prompt_tokens")), token_count(usage.get("completion_tokens"))


def parse_choices(data: Any) -> tuple[list[Choice], list[str]]:
    """The usable choices of a 200 response in `index` order, and one reason per unusable choice.

    A choice is unusable when it is not an object, ended with `finish_reason: "error"`, has fields of
    the wrong type, or carries no text (empty content and no reasoning, `message: null`).

    >>> good, bad = parse_choices({"choices": [{"index": 1, "message": {"content": "B"}},
    ...                                        {"index": 0, "message": {"content": "A"}}, "junk"]})
    >>> [c.text for c in good], bad
    (['A', 'B'], ['a choice that is not an object'])
    >>> parse_choices({"choices": []})
    ([], ['a response without choices'])
    """
    if not isinstance(data, dict):
        return [], ["a response that is not a JSON object"]
    raw = data.get("choices")
    if not isinstance(raw, list) or not raw:
        return [], ["a response without choices"]
    ranked: list[tuple[int, int, Choice]] = []
    bad: list[str] = []
    for position, item in enumerate(raw):
        choice, problem = _parse_choice(item)
        if choice is None:
            bad.append(problem)
            continue
        index = item.get("index")
        # A missing or odd index sorts by position, so a hostile index cannot reorder valid ones oddly.
        rank = index if isinstance(index, int) and not isinstance(index, bool) else len(raw) + position
        ranked.append((rank, position, choice))
    return [choice for _, _, choice in sorted(ranked, key=lambda t: (t[0], t[1]))], bad


def _parse_choice(item: Any) -> tuple[Choice | None, str]:
    """A Choice, or None and the reason it cannot be stored."""
    if not isinstance(item, dict):
        return None, "a choice that is not an object"
    finish = item.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        return None, "a choice whose finish_reason is not a string"
    if finish == "error":
        return None, "a choice with finish_reason 'error'"
    reasoning: str | None = None
    if "message" in item:
        message = item["message"]
        if message is None:
            return None, "a choice with message null"
        if not isinstance(message, dict):
            return None, "a choice whose message is not an object"
        text = message.get("content")
        for field in ("reasoning_content", "reasoning"):
            value = message.get(field)
            if value is not None and not isinstance(value, str):
                return None, f"a choice whose {field} is not a string"
            reasoning = reasoning or value or None
    else:
        text = item.get("text")
    if text is not None and not isinstance(text, str):
        return None, "a choice whose text is not a string"
    text = text or ""
    if not text.strip() and not (reasoning or "").strip():
        return None, "a choice without text"
    return Choice(text, reasoning, finish, item), ""
