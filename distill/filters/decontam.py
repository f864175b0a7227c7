"""Decontamination: drop samples whose problem overlaps a benchmark problem.

Texts are lower-cased and whitespace-folded, then split into words; a problem is contaminated when
it shares any word n-gram (n=8 by default) with a benchmark problem, or, for a benchmark problem
shorter than n words, when it contains that problem's whole text. The index of benchmark n-grams
is built once (64-bit string hashes, a few MB for all shipped benchmarks); each problem is checked once.
An n-gram that occurs in `boilerplate` or more different benchmark problems (AIME's "where m and n
are relatively prime positive integers") is ignored: it says nothing about a copy, and counting it
dropped original MATH problems that reuse the phrase.
"""

from __future__ import annotations

from collections.abc import Iterable

from distill.filters.config import DecontaminationConfig
from distill.problems import load_problems
from distill.records import Problem, Sample, prompt_text
from distill.text import normalise


def _gram_hash(words: list[str]) -> int:
    # Python's string hash: fast, and consistent within the process that builds and queries the index.
    return hash(" ".join(words))


class NgramIndex:
    """Word n-grams of a set of reference texts, with a lookup of which text a hit came from.

    >>> index = NgramIndex(n=3)
    >>> index.add("bench/1", "What is the sum of two and three?")
    >>> index.add("bench/2", "Add 2.")
    >>> index.match("Tell me: WHAT is  the sum of seven and eight")
    'bench/1'
    >>> index.match("please add 2. now"), index.match("nothing like it")
    ('bench/2', None)
    >>> index = NgramIndex(n=3, boilerplate=2)
    >>> index.add("b/1", "Find m+n where m and n are coprime.")
    >>> index.add("b/2", "A die is rolled. Find m+n where m and n are coprime.")
    >>> index.match("Some new problem; find m+n where m and n are coprime."), index.match("a die is rolled")
    (None, 'b/2')
    """

    def __init__(self, n: int = 8, boilerplate: int = 0) -> None:
        self.n = n
        self.boilerplate = boilerplate
        self.grams: dict[int, str] = {}
        self.shared: dict[int, int] = {}  # n-grams seen in more than one reference text: how many
        self.short: dict[str, str] = {}

    def add(self, name: str, text: str) -> None:
        """Index one reference text under `name`."""
        words = normalise(text).split()
        if len(words) < self.n:
            if words:
                self.short.setdefault(" ".join(words), name)
            return
        for gram in {_gram_hash(words[i : i + self.n]) for i in range(len(words) - self.n + 1)}:
            first = self.grams.setdefault(gram, name)
            if first != name:
                self.shared[gram] = self.shared.get(gram, 1) + 1

    def match(self, text: str) -> str | None:
        """The name of a reference text that `text` overlaps, or None."""
        words = normalise(text).split()
        for i in range(len(words) - self.n + 1):
            gram = _gram_hash(words[i : i + self.n])
            name = self.grams.get(gram)
            if name is not None and not (self.boilerplate and self.shared.get(gram, 1) >= self.boilerplate):
                return name
        if self.short:
            folded = f" {' '.join(words)} "
            for short, name in self.short.items():
                if f" {short} " in folded:
                    return name
        return None


def build_index(benchmarks: Iterable[str | Problem], n: int = 8, boilerplate: int = 0) -> NgramIndex:
    """Index the prompts of named problem sets (shipped names or paths) or of given problems."""
    index = NgramIndex(n, boilerplate)
    for item in benchmarks:
        problems = [item] if isinstance(item, Problem) else load_problems(item)
        for problem in problems:
            index.add(f"{problem.source or item}:{problem.id}", prompt_text(problem))
    return index


class Decontaminate:
    """The decontamination filter: `(sample, problem) -> None | reason`, each problem checked once."""

    def __init__(self, config: DecontaminationConfig, index: NgramIndex | None = None) -> None:
        self.index = index if index is not None else build_index(config.benchmarks, config.n, config.boilerplate)
        self.verdicts: dict[str, str | None] = {}

    def __call__(self, sample: Sample, problem: Problem) -> str | None:
        if problem.id not in self.verdicts:
            hit = self.index.match(prompt_text(problem))
            self.verdicts[problem.id] = None if hit is None else f"{self.index.n}-gram overlap with {hit}"
        return self.verdicts[problem.id]
