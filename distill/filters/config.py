"""The filter config: which filters run and their settings, loaded from YAML (see recipes/filters.yaml).

Every group is a small dataclass; `load_filter_config(path, overrides)` reads the YAML and applies
`section.key=value` overrides from the command line before validating, so a wrong key or type fails
with the file and key named.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from distill.config import apply_settings, from_mapping, read_yaml
from distill.paths import public_name

BENCHMARKS = ["math500", "aime2024", "gsm8k", "humaneval", "mbpp"]


@dataclass
class CorrectnessConfig:
    """Drop samples the verifier judged wrong; `unjudged` says what happens to `correct: null` ones."""

    enabled: bool = True
    unjudged: Literal["drop", "keep"] = "drop"


@dataclass
class FormatConfig:
    """Exactly one closed think block, a non-empty answer after it, a final answer where the kind needs one."""

    enabled: bool = True
    require_final_answer: bool = True


@dataclass
class TruncationConfig:
    """Drop samples that hit the token limit (`finish_reason == "length"`) or never closed the think block."""

    enabled: bool = True


@dataclass
class LanguageConfig:
    """The reasoning stays in the problem's language: share of words in its script at least `threshold`."""

    enabled: bool = True
    language: str | None = None  # None: detected from each problem's prompt
    threshold: float = 0.9
    min_words: int = 10  # shorter texts are not judged


@dataclass
class RepetitionConfig:
    """Looping text: too many tokens inside repeated word n-grams, or text that compresses too well."""

    enabled: bool = True
    ngram: int = 20  # long enough that LaTeX-heavy derivations (repeated \\cos\\left(...) spans) pass
    max_duplicate_share: float = 0.6
    max_compression_ratio: float = 8.0
    min_words: int = 100  # shorter texts are not judged


@dataclass
class LengthConfig:
    """Bounds on the assistant turn, in tokens of `tokenizer` (a local path) or in words when it is None."""

    enabled: bool = True
    tokenizer: str | None = None
    min: int = 1
    max: int | None = None


@dataclass
class ParagraphConfig:
    """R1's readability filter (off by default): no paragraph of the reasoning longer than `max_words`."""

    enabled: bool = False
    max_words: int = 400


@dataclass
class CodeInReasoningConfig:
    """R1's readability filter (off by default): no fenced code block in the reasoning of a non-code problem."""

    enabled: bool = False


@dataclass
class DuplicatesConfig:
    """Exact duplicates (hash of normalised text) and near duplicates (MinHash LSH over word shingles)."""

    exact: bool = True
    near: bool = True
    num_perm: int = 128
    threshold: float = 0.9
    shingle: int = 5
    scope: Literal["problem", "global"] = "problem"


@dataclass
class DecontaminationConfig:
    """Drop samples whose problem shares a word n-gram with a benchmark problem (or equals a short one)."""

    enabled: bool = True
    benchmarks: list[str] = field(default_factory=lambda: list(BENCHMARKS))
    n: int = 8
    # An n-gram found in at least this many benchmark problems is boilerplate ("where m and n are relatively
    # prime positive integers"), not evidence of a copy; 0 counts every n-gram.
    boilerplate: int = 3


@dataclass
class SelectionConfig:
    """After filtering: at most `max_per_problem` samples per problem by `policy`; optionally drop easy/hopeless problems."""

    max_per_problem: int | None = None
    policy: Literal["random", "shortest", "diverse"] = "random"
    seed: int = 0
    drop_always_solved: bool = False
    drop_never_solved: bool = False


@dataclass
class CardConfig:
    """What the dataset card says that the data cannot: the licence and a name."""

    license: str = "other"
    pretty_name: str | None = None


@dataclass
class FilterConfig:
    """All filter groups, in the order they run; `distill filter --config FILE --set group.key=value`."""

    decontamination: DecontaminationConfig = field(default_factory=DecontaminationConfig)
    truncation: TruncationConfig = field(default_factory=TruncationConfig)
    format: FormatConfig = field(default_factory=FormatConfig)
    correctness: CorrectnessConfig = field(default_factory=CorrectnessConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    repetition: RepetitionConfig = field(default_factory=RepetitionConfig)
    length: LengthConfig = field(default_factory=LengthConfig)
    long_paragraphs: ParagraphConfig = field(default_factory=ParagraphConfig)
    code_in_reasoning: CodeInReasoningConfig = field(default_factory=CodeInReasoningConfig)
    duplicates: DuplicatesConfig = field(default_factory=DuplicatesConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    card: CardConfig = field(default_factory=CardConfig)


def load_filter_config(path: str | Path | None = None, overrides: list[str] | None = None) -> FilterConfig:
    """Load a FilterConfig from YAML (defaults when `path` is None), then apply `group.key=value` overrides.

    >>> load_filter_config(None, ["selection.policy=shortest"]).selection.policy
    'shortest'
    >>> load_filter_config(None, ["selection.polcy=shortest"])
    Traceback (most recent call last):
    ...
    distill.errors.ConfigError: filter config: selection: unknown key 'polcy' (known: max_per_problem, policy, seed, drop_always_solved, drop_never_solved)
    """
    data = apply_settings(read_yaml(path) if path is not None else {}, overrides)
    return from_mapping(FilterConfig, data, str(path) if path is not None else "filter config")


def public_config(config: FilterConfig) -> dict[str, Any]:
    """The config as published artifacts record it: files (a tokenizer, a benchmark file) by their names,
    never by a path on this machine."""
    data = dataclasses.asdict(config)
    data["length"]["tokenizer"] = public_name(data["length"]["tokenizer"])
    data["decontamination"]["benchmarks"] = [public_name(b) for b in data["decontamination"]["benchmarks"]]
    return data
