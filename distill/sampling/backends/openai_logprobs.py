"""Per-token logprobs from an OpenAI-compatible server, checked as untrusted input.

Distillation needs token ids, not strings: a token's text does not name its id (many ids decode to the
same text, and partial UTF-8 bytes decode to nothing). vLLM's server sends ids when asked with
`return_tokens_as_token_ids` (tokens become `"token_id:N"`) and `return_token_ids` (the choice carries
`token_ids`, the prompt's ids come as `prompt_token_ids`). Anything else (strings only, no logprobs at
all, as DeepSeek's reasoner answers) is refused with one line: guessing ids from strings would
misalign every KD target after the first ambiguous token.

The logprobs are those the server computes; vLLM's default `raw_logprobs` mode gives the model's own
distribution at temperature 1, before top-p and top-k, as the local backends record it.
"""

from __future__ import annotations

import math
from typing import Any

from distill.errors import DistillError
from distill.sampling.backends.base import TokenLogprobs

PREFIX = "token_id:"
MAX_ID = 2**31 - 1  # ids are stored as int32


class LogprobsRefused(DistillError):
    """The server cannot serve per-token logprobs by token id (a fatal, not a retriable, failure)."""


def request_fields(endpoint: str, k: int) -> dict[str, Any]:
    """The body fields that ask for the top-`k` logprobs of every generated token, by token id.

    >>> request_fields("chat", 20)["top_logprobs"], request_fields("completions", 20)["logprobs"]
    (20, 20)
    """
    fields: dict[str, Any] = {"return_tokens_as_token_ids": True, "return_token_ids": True}
    if endpoint == "chat":
        fields.update(logprobs=True, top_logprobs=k)
    else:
        fields["logprobs"] = k
    return fields


def token_id(token: Any, where: str) -> int:
    """The id a `"token_id:N"` token names; a plain string is refused (the server sent text, not ids).

    >>> token_id("token_id:42", "x")
    42
    >>> token_id("Hello", "x")
    Traceback (most recent call last):
    ...
    distill.sampling.backends.openai_logprobs.LogprobsRefused: x: the server sent the token 'Hello' as text, not as a token id; only a server that returns token ids (vLLM's, asked with return_tokens_as_token_ids) can serve --logprobs
    """
    if isinstance(token, str) and token.startswith(PREFIX):
        digits = token[len(PREFIX):]
        if digits.isascii() and digits.isdigit() and int(digits) <= MAX_ID:
            return int(digits)
    shown = repr(token) if len(repr(token)) <= 40 else repr(token)[:37] + "..."
    raise LogprobsRefused(f"{where}: the server sent the token {shown} as text, not as a token id; only a server "
                          "that returns token ids (vLLM's, asked with return_tokens_as_token_ids) can serve --logprobs")


def logprob_value(value: Any, where: str) -> float:
    """A logprob: a finite number <= 0 (a rounding excess up to 1e-4 reads as 0).

    >>> logprob_value(-0.5, "x"), logprob_value(0.00001, "x")
    (-0.5, 0.0)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value > 1e-4:
        raise LogprobsRefused(f"{where}: logprob {value!r} is not a finite number <= 0")
    return min(float(value), 0.0)


def _positions(choice: dict[str, Any], endpoint: str, where: str) -> list[tuple[int, float, list[tuple[int, float]]]]:
    """`(sampled id, its logprob, [(alternative id, logprob)...])` per generated token."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        raise LogprobsRefused(f"{where}: the server returned no logprobs; this teacher cannot serve --logprobs "
                              "(use a vLLM server, or the transformers or vllm backend)")
    rows: list[tuple[int, float, list[tuple[int, float]]]] = []
    if endpoint == "chat":
        content = logprobs.get("content")
        if not isinstance(content, list):
            raise LogprobsRefused(f"{where}: the server's logprobs have no per-token content")
        for step, item in enumerate(content):
            at = f"{where}: token {step}"
            if not isinstance(item, dict) or not isinstance(item.get("top_logprobs"), list):
                raise LogprobsRefused(f"{at}: expected an object with top_logprobs")
            alternatives = []
            for alt in item["top_logprobs"]:
                if not isinstance(alt, dict):
                    raise LogprobsRefused(f"{at}: a top logprob that is not an object")
                alternatives.append((token_id(alt.get("token"), at), logprob_value(alt.get("logprob"), at)))
            rows.append((token_id(item.get("token"), at), logprob_value(item.get("logprob"), at), alternatives))
        return rows
    tokens, values, tops = logprobs.get("tokens"), logprobs.get("token_logprobs"), logprobs.get("top_logprobs")
    if not (isinstance(tokens, list) and isinstance(values, list) and isinstance(tops, list)
            and len(tokens) == len(values) == len(tops)):
        raise LogprobsRefused(f"{where}: the server's logprobs lack tokens, token_logprobs or top_logprobs of one length")
    for step, (token, value, top) in enumerate(zip(tokens, values, tops, strict=True)):
        at = f"{where}: token {step}"
        if not isinstance(top, dict):
            raise LogprobsRefused(f"{at}: top_logprobs is not an object")
        alternatives = [(token_id(t, at), logprob_value(v, at)) for t, v in top.items()]
        rows.append((token_id(token, at), logprob_value(value, at), alternatives))
    return rows


def parse_token_logprobs(choice: Any, endpoint: str, k: int, where: str = "response") -> TokenLogprobs:
    """The `TokenLogprobs` of one choice: sampled ids and logprobs, and the K best alternatives per token
    (best first). Raises `LogprobsRefused` for text tokens, missing or malformed logprobs, fewer than K
    alternatives, or generated ids that disagree with the choice's `token_ids`."""
    import numpy as np

    if not isinstance(choice, dict):
        raise LogprobsRefused(f"{where}: a choice that is not an object")
    rows = _positions(choice, endpoint, where)
    ids = [token for token, _, _ in rows]
    stated = choice.get("token_ids")
    if stated is not None and stated != ids:
        raise LogprobsRefused(f"{where}: the logprobs' token ids differ from the choice's token_ids")
    top_ids = np.zeros((len(rows), k), dtype=np.int32)
    top_lp = np.zeros((len(rows), k), dtype=np.float32)
    for step, (_, _, alternatives) in enumerate(rows):
        best: dict[int, float] = {}
        for token, value in alternatives:
            best[token] = max(value, best.get(token, -math.inf))
        if len(best) < k:
            raise LogprobsRefused(f"{where}: token {step}: {len(best)} alternatives, fewer than the {k} asked for "
                                  "(the server caps top_logprobs; lower --logprobs)")
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:k]
        top_ids[step] = [token for token, _ in ranked]
        top_lp[step] = [value for _, value in ranked]
    return TokenLogprobs(np.asarray(ids, dtype=np.int32), np.asarray([v for _, v, _ in rows], dtype=np.float32),
                         top_ids, top_lp)


def prompt_token_ids(data: Any, choice: Any, where: str = "response") -> list[int]:
    """The prompt's token ids as the server saw them (the chat response's `prompt_token_ids`, or the
    completions choice's); refused when absent, since KD checks the student's template against them."""
    value = choice.get("prompt_token_ids") if isinstance(choice, dict) else None
    if value is None and isinstance(data, dict):
        value = data.get("prompt_token_ids")
    if not isinstance(value, list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_ID for v in value):
        raise LogprobsRefused(f"{where}: the server returned no prompt_token_ids (vLLM sends them when asked with "
                              "return_token_ids); without them the student's template cannot be checked")
    return list(value)
