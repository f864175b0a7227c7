"""The metrics of R1's protocol on hand-made counts and answers."""

from __future__ import annotations

import itertools
from math import comb

import pytest

from distill.evaluate.metrics import (
    aggregate,
    bootstrap_interval,
    k_values,
    majority_vote,
    mean_and_se,
    pass_at_k,
    problem_result,
    string_equal,
)
from distill.records import Sample


def exact_pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), with C(m, k) = 0 for m < k."""
    return 1.0 - comb(n - c, k) / comb(n, k)


def enumerated_pass_at_k(n: int, c: int, k: int) -> float:
    """The share of all k-subsets of the n samples that hold at least one correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("n,c,k", [(4, 0, 1), (4, 0, 4), (4, 4, 4), (4, 4, 1), (4, 1, 1), (4, 1, 2), (4, 2, 2),
                                   (4, 3, 2), (8, 3, 4), (8, 7, 2), (5, 1, 5), (1, 0, 1), (1, 1, 1), (10, 4, 3)])
def test_pass_at_k_matches_the_combinatorial_formula(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(exact_pass_at_k(n, c, k), abs=1e-12)
    assert pass_at_k(n, c, k) == pytest.approx(enumerated_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_edge_cases() -> None:
    assert pass_at_k(4, 0, 4) == 0.0  # c = 0: never solved
    assert pass_at_k(4, 1, 4) == 1.0  # n = k: solved iff any sample is correct
    assert pass_at_k(4, 2, 1) == 0.5  # pass@1 is the plain mean
    assert pass_at_k(64, 1, 32) == pytest.approx(0.5)
    assert 0.0 < pass_at_k(1000, 3, 7) < 1.0  # no overflow for long runs
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(2, 1, 4)
    with pytest.raises(ValueError, match="c <= n"):
        pass_at_k(2, 3, 1)


def test_k_values_and_statistics() -> None:
    assert k_values(64) == [1, 2, 4, 8, 16, 32, 64]
    assert k_values(3) == [1, 2, 3]
    mean, se = mean_and_se([1.0, 0.5, 0.0])
    assert mean == 0.5 and se == pytest.approx(0.5 / 3**0.5)
    low, high = bootstrap_interval([0.0, 1.0] * 20)
    assert 0.3 < low < 0.5 < high < 0.7
    assert bootstrap_interval([0.0, 1.0] * 20) == (low, high)  # seeded


def sample(i: int, answer: str | None, correct: bool | None) -> Sample:
    return Sample("p", i, "", "", extracted=answer, correct=correct)


def fraction_equal(a: str, b: str) -> bool:
    """A stand-in for math equivalence on the forms used here: \\frac12, 1/2 and 0.5 are one value."""
    forms = {"\\frac12": 0.5, "\\frac{1}{2}": 0.5, "1/2": 0.5, "0.5": 0.5, "3": 3.0, "3.0": 3.0}
    return a in forms and b in forms and forms[a] == forms[b]


def test_cons_groups_equivalent_answers_in_different_forms() -> None:
    # 3 appears twice verbatim, 1/2 three times in three forms: the half wins only if forms group.
    samples = [sample(0, "3", False), sample(1, "\\frac12", True), sample(2, "3", False),
               sample(3, "0.5", True), sample(4, "1/2", True)]
    assert majority_vote(samples, string_equal).answer == "3"
    vote = majority_vote(samples, fraction_equal)
    assert (vote.answer, vote.votes, vote.groups, vote.correct) == ("\\frac12", 3, 2, True)


def test_cons_ties_go_to_the_answer_seen_first_and_missing_answers_do_not_vote() -> None:
    samples = [sample(3, "7", True), sample(0, None, None), sample(1, "5", False), sample(2, "", False)]
    vote = majority_vote(samples, string_equal)
    assert (vote.answer, vote.votes, vote.correct) == ("5", 1, False)  # index 1 precedes index 3
    assert majority_vote([sample(0, None, None)], string_equal).correct is False


def test_cons_uses_a_judged_verdict_and_caches_comparisons() -> None:
    calls: list[tuple[str, str]] = []

    def counting_equal(a: str, b: str) -> bool:
        calls.append((a, b))
        return fraction_equal(a, b)

    cache: dict[tuple[str, str], bool] = {}
    samples = [sample(0, "0.5", None), sample(1, "1/2", True), sample(2, "1/2", True), sample(3, "3", False)]
    assert majority_vote(samples, counting_equal, cache).correct is True  # the null verdict is skipped
    first = len(calls)
    majority_vote(samples, counting_equal, cache)
    assert len(calls) == first  # the second vote is answered from the cache


def test_problem_and_benchmark_numbers() -> None:
    a = [Sample("a", i, "", "", extracted=x, correct=ok, completion_tokens=t, finish_reason=f) for i, (x, ok, t, f)
         in enumerate([("1", True, 10, "stop"), ("2", False, 30, "length"), ("1", True, 20, "stop"), ("1", None, 40, "length")])]
    b = [Sample("b", i, "", "", extracted="9", correct=False, completion_tokens=10, finish_reason="stop") for i in range(4)]
    pa, pb = problem_result("a", a, [1, 2, 4], string_equal), problem_result("b", b, [1, 2, 4], string_equal)
    assert (pa["n"], pa["correct"], pa["unjudged"], pa["pass@1"], pa["truncated"]) == (4, 2, 1, 0.5, 2)
    assert pa["pass@k"] == {"1": 0.5, "2": pytest.approx(5 / 6), "4": 1.0}
    assert (pa["cons_answer"], pa["cons_correct"]) == ("1", True)
    summary = aggregate([pa, pb], a + b, k=4)
    assert summary["pass@1"] == sum(s.correct is True for s in a + b) / 8 == 0.25
    assert summary["pass@1_se"] == pytest.approx(0.25)
    assert summary["pass@k"] == {"1": 0.25, "2": pytest.approx(5 / 12), "4": 0.5}
    assert summary["cons@k"] == 0.5
    assert summary["truncation_rate"] == 0.25
    assert summary["mean_completion_tokens"] == (100 + 40) / 8
    assert summary["unjudged"] == 1
    code = problem_result("a", a, [1], None)
    assert code["cons_correct"] is None and aggregate([code], a, k=4)["cons@k"] is None


def test_number_fast_path_agrees_with_math_verify() -> None:
    from distill.evaluate.metrics import with_number_fast_path
    from distill.verify import answers_equal

    fast = with_number_fast_path(answers_equal)
    pairs = [("3", "3.0"), ("-2", "-2.00"), ("12", "13"), ("0.5", "0.50"), ("100", "10"), ("+4", "4"),
             ("0.5", "\\frac{1}{2}"), ("1/2", "0.5"), ("x+1", "1+x"), ("7", "\\sqrt{49}")]
    assert [fast(a, b) for a, b in pairs] == [answers_equal(a, b) for a, b in pairs]
    assert [fast(a, b) for a, b in pairs] == [True, True, False, True, False, True, True, True, True, True]


def test_cons_vote_with_math_equivalence() -> None:
    from distill.evaluate.run import cons_equal

    samples = [sample(0, "7", False), sample(1, "\\frac{1}{2}", True), sample(2, "7", False),
               sample(3, "0.5", True), sample(4, "1/2", True)]
    vote = majority_vote(samples, cons_equal("math"))
    assert (vote.answer, vote.votes, vote.correct) == ("\\frac{1}{2}", 3, True)
    assert cons_equal("code") is None
