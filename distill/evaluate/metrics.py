"""The numbers of R1's evaluation protocol, as plain functions over verified samples.

- pass@1 is the mean correctness of the k samples of a problem, averaged over problems; its
  standard error is taken over problems (the unit that was sampled from the benchmark), and a
  seeded bootstrap over problems gives a 95 % interval.
- pass@k' is the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k') / C(n, k'), for the
  powers of two k' <= n (and n itself).
- cons@k is a majority vote over the extracted answers of a problem's samples, where answers that
  are equivalent (`\\frac12`, `0.5`, `1/2`) vote together; ties go to the answer seen first.

A sample whose verdict is `null` (it could not be judged) counts as incorrect everywhere.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from distill.records import Sample

AnswerEqual = Callable[[str, str], bool]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate for a problem with `c` correct out of `n` samples.

    Computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i), which equals 1 - C(n-c, k)/C(n, k) without
    huge binomials.

    >>> pass_at_k(4, 0, 2), pass_at_k(4, 4, 1), pass_at_k(4, 1, 1)
    (0.0, 1.0, 0.25)
    >>> round(pass_at_k(4, 1, 2), 6)
    0.5
    """
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def k_values(k: int) -> list[int]:
    """The k' at which pass@k' is reported: powers of two up to k, and k itself.

    >>> k_values(1), k_values(4), k_values(6)
    ([1], [1, 2, 4], [1, 2, 4, 6])
    """
    values = [1]
    while values[-1] * 2 <= k:
        values.append(values[-1] * 2)
    if values[-1] != k:
        values.append(k)
    return values


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """The mean and its standard error (sample standard deviation / sqrt(n); 0 for one value).

    >>> mean, se = mean_and_se([1.0, 0.0, 1.0, 0.0])
    >>> mean, round(se, 6)
    (0.5, 0.288675)
    """
    if not values:
        return 0.0, 0.0
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


def paired_difference(before: dict[str, float], after: dict[str, float]) -> tuple[float, float]:
    """The mean per-problem change from `before` to `after` (problem id -> pass@1) and its standard error,
    over the problems both hold: the paired test for "did this model get better on the same problems".

    >>> diff, se = paired_difference({"a": 0.0, "b": 0.5, "c": 1.0}, {"a": 0.5, "b": 0.5, "c": 1.0})
    >>> round(diff, 4), round(se, 4)
    (0.1667, 0.1667)
    """
    shared = [pid for pid in before if pid in after]
    if not shared:
        raise ValueError("paired_difference: the two evaluations share no problem")
    return mean_and_se([after[pid] - before[pid] for pid in shared])


def bootstrap_interval(values: Sequence[float], resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """A percentile bootstrap interval of the mean, resampling `values` (per-problem scores) with a seed.

    >>> bootstrap_interval([1.0] * 5)
    (1.0, 1.0)
    """
    if not values:
        return 0.0, 0.0
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1.0 - level) / 2
    low = means[int(math.floor(tail * (resamples - 1)))]
    high = means[int(math.ceil((1.0 - tail) * (resamples - 1)))]
    return low, high


@dataclass
class Vote:
    """The outcome of a cons@k vote: the winning answer, its votes, and whether it is correct."""

    answer: str | None
    votes: int
    groups: int
    correct: bool


def string_equal(a: str, b: str) -> bool:
    """Equality after trimming and case folding: the equivalence for choice letters and exact answers.

    >>> string_equal(" B", "b")
    True
    """
    return a.strip().casefold() == b.strip().casefold()


_PLAIN_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def with_number_fast_path(equal: AnswerEqual) -> AnswerEqual:
    """`equal`, except that two plain decimal numbers are compared exactly without calling it.

    Most votes on AIME, GSM8K and MATH are between integers; math-verify takes milliseconds per
    pair (sympy), which adds up to minutes for cons@64 on a benchmark. Anything else goes to `equal`.

    >>> calls = []
    >>> eq = with_number_fast_path(lambda a, b: calls.append((a, b)) or False)
    >>> eq("3", "3.0"), eq("12", "13"), eq("0.5", "1/2"), calls
    (True, False, False, [('0.5', '1/2')])
    """
    def fast(a: str, b: str) -> bool:
        a, b = a.strip(), b.strip()
        if _PLAIN_NUMBER.fullmatch(a) and _PLAIN_NUMBER.fullmatch(b):
            return Decimal(a) == Decimal(b)
        return equal(a, b)

    return fast


def majority_vote(samples: Sequence[Sample], equal: AnswerEqual = string_equal,
                  cache: dict[tuple[str, str], bool] | None = None) -> Vote:
    """Vote over the samples' `extracted` answers; equivalent answers (by `equal`) form one group.

    Each answer is compared with the representative (first member) of each existing group, so an
    answer joins the first group it is equivalent to. The largest group wins; a tie goes to the
    group seen first (samples are taken in `sample_index` order). The vote is correct when the
    winning group's first judged sample is correct. Samples without an answer do not vote; with
    no answer at all the vote is incorrect. `cache` memoises `equal` across calls.

    >>> s = [Sample("p", i, "", "", extracted=a, correct=ok) for i, (a, ok) in
    ...      enumerate([("3", False), ("4", True), ("3", False), ("4", True)])]
    >>> majority_vote(s)
    Vote(answer='3', votes=2, groups=2, correct=False)
    """
    cache = cache if cache is not None else {}
    groups: list[list[Sample]] = []
    for sample in sorted(samples, key=lambda s: s.sample_index):
        answer = sample.extracted
        if answer is None or not answer.strip():
            continue
        for group in groups:
            representative = group[0].extracted or ""
            key = (representative, answer)
            if key not in cache:
                # Equivalence is symmetric: a pair seen the other way round is answered from the cache.
                known = cache.get((answer, representative))
                cache[key] = known if known is not None else representative == answer or bool(equal(representative, answer))
            if cache[key]:
                group.append(sample)
                break
        else:
            groups.append([sample])
    if not groups:
        return Vote(answer=None, votes=0, groups=0, correct=False)
    winner = groups[0]
    for group in groups[1:]:
        if len(group) > len(winner):  # strictly more: ties stay with the group seen first
            winner = group
    judged = [s for s in winner if s.correct is not None]
    return Vote(answer=winner[0].extracted, votes=len(winner), groups=len(groups),
                correct=bool(judged and judged[0].correct))


def problem_result(problem_id: str, samples: Sequence[Sample], ks: Sequence[int], equal: AnswerEqual | None,
                   cache: dict[tuple[str, str], bool] | None = None) -> dict[str, Any]:
    """Per-problem numbers: n, correct count, pass@1, pass@k', the cons@k vote (None when `equal` is None).

    `cache` memoises answer comparisons across the problems of a benchmark.
    """
    n = len(samples)
    correct = sum(1 for s in samples if s.correct is True)
    tokens = [s.completion_tokens for s in samples if s.completion_tokens is not None]
    result: dict[str, Any] = {
        "problem_id": problem_id,
        "n": n,
        "correct": correct,
        "unjudged": sum(1 for s in samples if s.correct is None),
        "pass@1": correct / n if n else 0.0,
        "pass@k": {str(k): pass_at_k(n, correct, k) for k in ks if k <= n},
        "truncated": sum(1 for s in samples if s.finish_reason == "length"),
        "mean_completion_tokens": sum(tokens) / len(tokens) if tokens else None,
    }
    if equal is None:
        result.update({"cons_answer": None, "cons_votes": None, "cons_correct": None})
    else:
        vote = majority_vote(samples, equal, cache)
        result.update({"cons_answer": vote.answer, "cons_votes": vote.votes, "cons_correct": vote.correct})
    return result


def aggregate(problems: Sequence[dict[str, Any]], samples: Sequence[Sample], k: int) -> dict[str, Any]:
    """Benchmark numbers from per-problem results and the samples they came from.

    pass@1 is the mean of per-problem pass@1; when every problem has the same number of samples it
    equals the mean of the per-sample `correct` values (nulls as false), which `evaluate` guarantees.
    """
    scores = [p["pass@1"] for p in problems]
    pass1, se = mean_and_se(scores)
    low, high = bootstrap_interval(scores)
    pass_k: dict[str, float] = {}
    for kk in k_values(k):
        values = [p["pass@k"][str(kk)] for p in problems if str(kk) in p["pass@k"]]
        if values and len(values) == len(problems):
            pass_k[str(kk)] = sum(values) / len(values)
    cons = [p["cons_correct"] for p in problems]
    tokens = [s.completion_tokens for s in samples if s.completion_tokens is not None]
    return {
        "problems": len(problems),
        "samples": len(samples),
        "k": k,
        "pass@1": pass1,
        "pass@1_se": se,
        "pass@1_ci95": [low, high],
        "pass@k": pass_k,
        "cons@k": (sum(1 for c in cons if c) / len(cons)) if cons and None not in cons else None,
        "mean_completion_tokens": sum(tokens) / len(tokens) if tokens else None,
        "truncation_rate": sum(1 for s in samples if s.finish_reason == "length") / len(samples) if samples else 0.0,
        "unjudged": sum(1 for s in samples if s.correct is None),
    }
