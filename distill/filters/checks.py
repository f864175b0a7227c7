"""The per-sample filters: plain functions `(sample, problem) -> None | reason`.

A filter returns None to keep a sample and a short reason (a string) to drop it. Parameterised
filters are factories that take their config group and return the function. They hold no state,
so they also work inside `datasets.Dataset.filter(num_proc=...)`. Stateful ones (duplicates) live in
`distill.filters.dedup`; decontamination in `distill.filters.decontam`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill.errors import ConfigError
from distill.filters.config import (
    CodeInReasoningConfig,
    CorrectnessConfig,
    FormatConfig,
    LanguageConfig,
    LengthConfig,
    ParagraphConfig,
    RepetitionConfig,
    TruncationConfig,
)
from distill.records import Problem, Sample, prompt_text
from distill.text import (
    assistant_text,
    compression_ratio,
    detect_language,
    duplicate_ngram_share,
    language_share,
)
from distill.verify import extract_math_answer

Filter = Callable[[Sample, Problem], "str | None"]

_FENCE = re.compile(r"^\s*```", re.M)
_THINK_TAG = re.compile(r"</?think>")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S)


def _final_answer(content: str) -> str | None:
    """The final math answer, by the verifier's own extraction.

    An R1-Zero style `<answer>...</answer>` counts: a bare answer inside the tags is the final answer.

    >>> _final_answer("so <answer> 42 </answer>"), _final_answer("no answer here")
    ('42', None)
    """
    if "<answer>" in content:
        found = _ANSWER_TAG.findall(content)
        if found and found[-1].strip():
            content = found[-1].strip()
            inner = _final_answer(content)
            return inner if inner is not None else content
    return extract_math_answer(content)


def correctness(config: CorrectnessConfig | None = None) -> Filter:
    """Drop samples judged wrong; unjudged (`correct` null) ones are dropped unless `unjudged: keep`.

    >>> f = correctness()
    >>> P = Problem("p", "1+1?")
    >>> f(Sample("p", 0, "r", "c", correct=True), P) is None
    True
    >>> f(Sample("p", 0, "r", "c", correct=False, reason="wrong_answer"), P)
    'incorrect: wrong_answer'
    >>> f(Sample("p", 0, "r", "c", correct=None, reason="timeout"), P)
    'not judged: timeout'
    >>> correctness(CorrectnessConfig(unjudged="keep"))(Sample("p", 0, "r", "c"), P) is None
    True
    """
    config = config or CorrectnessConfig()

    def check(sample: Sample, problem: Problem) -> str | None:
        if sample.correct is True:
            return None
        if sample.correct is False:
            return f"incorrect: {sample.reason or 'wrong'}"
        return None if config.unjudged == "keep" else f"not judged: {sample.reason or 'no verdict'}"

    return check


def truncation(config: TruncationConfig | None = None) -> Filter:
    """Drop samples cut off by the token limit or whose think block never closed.

    >>> f, P = truncation(), Problem("p", "1+1?")
    >>> f(Sample("p", 0, "r", "c", finish_reason="length"), P)
    'finish_reason is length'
    >>> f(Sample("p", 0, "r", "", finish_reason="stop", think_closed=False), P)
    'think block not closed'
    >>> f(Sample("p", 0, "r", "c", finish_reason="stop", think_closed=True), P) is None
    True
    """

    def check(sample: Sample, problem: Problem) -> str | None:
        if sample.finish_reason == "length":
            return "finish_reason is length"
        if sample.think_closed is False:
            return "think block not closed"
        return None

    return check


def format_check(config: FormatConfig | None = None) -> Filter:
    """Exactly one closed think block, a non-empty answer after it, a final answer where the kind needs one.

    Math needs an extractable final answer (`\\boxed{}` and the verifier's fallbacks); code needs a
    fenced code block in the answer.

    >>> f, P = format_check(), Problem("p", "1+1?", kind="math")
    >>> f(Sample("p", 0, "1 plus 1 is 2.", "The answer is \\\\boxed{2}."), P) is None
    True
    >>> f(Sample("p", 0, "", "The answer is \\\\boxed{2}."), P)
    'empty reasoning'
    >>> f(Sample("p", 0, "so 2", "  "), P)
    'empty answer after </think>'
    >>> f(Sample("p", 0, "so 2 </think> <think> again", "\\\\boxed{2}"), P)
    'think tag inside the reasoning'
    >>> f(Sample("p", 0, "so 2", "<think>more</think> \\\\boxed{2}"), P)
    'think tag inside the answer'
    >>> f(Sample("p", 0, "so 2", "I think it is two."), P)
    'no final answer in the answer'
    >>> f(Sample("p", 0, "loop", "def f(): pass"), Problem("c", "Write f", kind="code", tests={"type": "asserts"}))
    'no code block in the answer'
    """
    config = config or FormatConfig()

    def check(sample: Sample, problem: Problem) -> str | None:
        if not sample.reasoning.strip():
            return "empty reasoning"
        if not sample.content.strip():
            return "empty answer after </think>"
        if _THINK_TAG.search(sample.reasoning):
            return "think tag inside the reasoning"
        if _THINK_TAG.search(sample.content):
            return "think tag inside the answer"
        if config.require_final_answer:
            if problem.kind == "math" and _final_answer(sample.content) is None:
                return "no final answer in the answer"
            if problem.kind == "code" and not _FENCE.search(sample.content):
                return "no code block in the answer"
        return None

    return check


def language(config: LanguageConfig | None = None) -> Filter:
    """The reasoning and answer stay in the problem's language (share of words in its script >= threshold).

    >>> f = language()
    >>> P = Problem("p", "How many apples does Ann have now?")
    >>> f(Sample("p", 0, "Ann starts with three apples and gets two more, so she has five apples now.", "5"), P) is None
    True
    >>> f(Sample("p", 0, "Ann starts with three apples. 然后她又得到了两个苹果，所以现在一共有五个苹果。", "5"), P)
    'share of en 0.19 < 0.9'
    """
    config = config or LanguageConfig()
    cache: dict[str, str | None] = {}

    def check(sample: Sample, problem: Problem) -> str | None:
        wanted = config.language
        if wanted is None:
            if problem.id not in cache:
                cache[problem.id] = detect_language(prompt_text(problem))
            wanted = cache[problem.id]
        if wanted is None:
            return None
        text = sample.reasoning + "\n" + sample.content
        if len(text.split()) < config.min_words and not any(ord(c) > 0x2E80 for c in text):
            return None
        share = language_share(text, wanted)
        return None if share >= config.threshold else f"share of {wanted} {share:.2f} < {config.threshold:g}"

    return check


def repetition(config: RepetitionConfig | None = None) -> Filter:
    """Looping text: too much of it inside repeated word n-grams, or a compression ratio that is too high.

    >>> f, P = repetition(), Problem("p", "1+1?")
    >>> loop = "Wait, let me recompute the sum of the first two terms again carefully. " * 30
    >>> f(Sample("p", 0, loop, "\\\\boxed{2}"), P)
    'repeated 20-grams cover 1.00 of the words'
    >>> f(Sample("p", 0, "We add one and one, which gives two.", "\\\\boxed{2}"), P) is None
    True
    """
    config = config or RepetitionConfig()

    def check(sample: Sample, problem: Problem) -> str | None:
        text = sample.reasoning + "\n" + sample.content
        tokens = text.lower().split()
        if len(tokens) < config.min_words:
            return None
        share = duplicate_ngram_share(tokens, config.ngram)
        if share > config.max_duplicate_share:
            return f"repeated {config.ngram}-grams cover {share:.2f} of the words"
        ratio = compression_ratio(text)
        if ratio > config.max_compression_ratio:
            return f"compression ratio {ratio:.1f} > {config.max_compression_ratio:g}"
        return None

    return check


def length(config: LengthConfig | None = None) -> Filter:
    """Bounds on the assistant turn's length, in tokens of a local tokenizer, or in words without one.

    >>> f, P = length(LengthConfig(min=3, max=6)), Problem("p", "1+1?")
    >>> f(Sample("p", 0, "one plus one", "two"), P) is None
    True
    >>> f(Sample("p", 0, "one", ""), P)
    'length 1 words < min 3'
    >>> f(Sample("p", 0, "one plus one is two, sure", "two"), P)
    'length 7 words > max 6'
    """
    config = config or LengthConfig()
    counter = make_counter(config.tokenizer)
    unit = "tokens" if config.tokenizer else "words"

    def check(sample: Sample, problem: Problem) -> str | None:
        n = counter(assistant_text(sample.reasoning, sample.content)) if config.tokenizer else len((sample.reasoning + " " + sample.content).split())
        if n < config.min:
            return f"length {n} {unit} < min {config.min}"
        if config.max is not None and n > config.max:
            return f"length {n} {unit} > max {config.max}"
        return None

    return check


def make_counter(tokenizer: str | None) -> Callable[[str], int]:
    """A function counting tokens of a tokenizer loaded from a local path (never the hub), or words.

    >>> make_counter(None)("three small words")
    3
    """
    if tokenizer is None:
        return lambda text: len(text.split())
    if not Path(tokenizer).exists():
        raise ConfigError(f"length.tokenizer {tokenizer}: no such local path (tokenizers are never downloaded here)")
    from transformers import PreTrainedTokenizerFast

    # PreTrainedTokenizerFast reads tokenizer.json as saved (AutoTokenizer can swap in another pre-tokenizer).
    tok: Any = PreTrainedTokenizerFast.from_pretrained(tokenizer, local_files_only=True)
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def long_paragraphs(config: ParagraphConfig | None = None) -> Filter:
    """R1's readability filter: drop reasoning with a paragraph (blank-line separated) over `max_words` words.

    >>> f, P = long_paragraphs(ParagraphConfig(enabled=True, max_words=5)), Problem("p", "1+1?")
    >>> f(Sample("p", 0, "short one.\\n\\nshort two.", "2"), P) is None
    True
    >>> f(Sample("p", 0, "one two three four five six seven", "2"), P)
    'paragraph of 7 words > 5'
    """
    config = config or ParagraphConfig()

    def check(sample: Sample, problem: Problem) -> str | None:
        longest = max((len(p.split()) for p in re.split(r"\n\s*\n", sample.reasoning)), default=0)
        return f"paragraph of {longest} words > {config.max_words}" if longest > config.max_words else None

    return check


def code_in_reasoning(config: CodeInReasoningConfig | None = None) -> Filter:
    """R1's readability filter: drop a fenced code block in the reasoning of a non-code problem.

    >>> f = code_in_reasoning()
    >>> f(Sample("p", 0, "Let me check:\\n```python\\nprint(1+1)\\n```", "2"), Problem("p", "1+1?"))
    'code block in the reasoning of a math problem'
    >>> f(Sample("p", 0, "```python\\nx=1\\n```", "ok"), Problem("c", "f", kind="code", tests={"type": "asserts"})) is None
    True
    """

    def check(sample: Sample, problem: Problem) -> str | None:
        if problem.kind != "code" and _FENCE.search(sample.reasoning):
            return f"code block in the reasoning of a {problem.kind} problem"
        return None

    return check


# name -> (factory, config group attribute). Order of FilterConfig is the order they run in.
CHECKS: dict[str, Callable[..., Filter]] = {
    "truncation": truncation,
    "format": format_check,
    "correctness": correctness,
    "language": language,
    "repetition": repetition,
    "length": length,
    "long_paragraphs": long_paragraphs,
    "code_in_reasoning": code_in_reasoning,
}
