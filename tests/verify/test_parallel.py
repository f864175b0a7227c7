"""verify_samples over a process pool: input order, bounded memory, the same verdicts as one process."""

from __future__ import annotations

import itertools

import pytest

from distill.records import Problem, Sample
from distill.toy.problems import generate
from distill.verify import verify_samples
from distill.verify.parallel import verify_stream


@pytest.fixture(scope="module")
def toy() -> tuple[dict[str, Problem], list[Sample]]:
    pairs = generate(30, seed=1)
    problems = {p.id: p for p, _ in pairs}
    samples = []
    for i, (p, gold) in enumerate(pairs):
        reasoning, _, content = gold.partition("</think>")
        samples.append(Sample(p.id, 0, reasoning, content))
        samples.append(Sample(p.id, 1, "", f"The answer is \\boxed{{{int(p.answer) + i % 2}}}."))
    return problems, samples


def test_pool_keeps_input_order_and_matches_one_process(toy: tuple[dict[str, Problem], list[Sample]]) -> None:
    problems, samples = toy
    pooled = list(verify_samples(problems, samples, workers=2))
    single = list(verify_samples(problems, samples, workers=1))
    assert [s.key for s in pooled] == [s.key for s in samples]
    assert [s.correct for s in pooled] == [s.correct for s in single]
    assert all(s.correct for s in pooled if s.sample_index == 0)
    assert [s.correct for s in pooled if s.sample_index == 1] == [i % 2 == 0 for i in range(30)]


def test_stream_is_bounded(toy: tuple[dict[str, Problem], list[Sample]]) -> None:
    problems, samples = toy
    pulled = 0

    def endless():
        nonlocal pulled
        for sample in itertools.cycle(samples):
            pulled += 1
            yield sample

    stream = verify_stream(problems, endless(), workers=2, batch_size=4, window=3)
    first = list(itertools.islice(stream, 10))
    stream.close()
    assert len(first) == 10
    # At most the window of batches ahead of what was consumed, never the whole (endless) input.
    assert pulled <= 10 + 4 * 3 + 4


def test_unknown_problem_is_named(toy: tuple[dict[str, Problem], list[Sample]]) -> None:
    problems, _ = toy
    with pytest.raises(KeyError, match="nope"):
        list(verify_samples(problems, [Sample("nope", 0, "", "x")], workers=2))
