"""verify_samples over a process pool: input order, bounded memory, the same verdicts as one process."""

from __future__ import annotations

import itertools
import os
import signal
import time

import pytest

from distill.records import Problem, Sample, Verdict
from distill.toy.problems import generate
from distill.verify import code, parallel, registry, verify_samples
from distill.verify.choice import verify_exact
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


def _stuck_or_exact(problem: Problem, sample: Sample, answer_format: str) -> Verdict:
    """`verify_exact`, except that content "stuck" hangs with every signal blocked (a verifier stuck in C
    code that ignores signals) and "crash" ends the worker."""
    if sample.content == "stuck":
        signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP})
        time.sleep(3600)
    if sample.content == "crash":
        os._exit(3)
    return verify_exact(problem, sample, answer_format)


def test_a_stuck_worker_is_killed_and_later_samples_still_come_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.VERIFIERS, "exact", _stuck_or_exact)
    monkeypatch.setattr(parallel, "MARGIN", 1.0)  # an exact-match sample's budget is the margin alone
    problem = Problem(id="e", prompt="?", kind="exact", answer="42")
    contents = ["42", "stuck", "41", "42", "crash", "42", "stuck", "42", "42", "41"]
    samples = [Sample("e", i, "", c) for i, c in enumerate(contents)]
    started = time.monotonic()
    got = list(parallel.verify_stream({"e": problem}, samples, workers=2, batch_size=3))
    seconds = time.monotonic() - started
    assert [s.sample_index for s, _ in got] == list(range(len(contents)))
    verdicts = [(v.correct, v.reason) for _, v in got]
    assert verdicts == [(True, None), (None, "timeout"), (False, "wrong_answer"), (True, None), (None, "timeout"),
                        (True, None), (None, "timeout"), (True, None), (True, None), (False, "wrong_answer")]
    assert "did not finish" in got[1][1].details["error"] and "crashed" in got[4][1].details["error"]
    assert seconds < 30, seconds  # two stuck samples cost about their budget each, not forever


def test_a_code_sample_the_watchdog_stops_is_wrong_not_unjudged() -> None:
    problem = Problem(id="c", prompt="?", kind="code", tests={"type": "stdio", "cases": [{"input": "", "output": ""}]})
    verdict = parallel.watchdog_verdict(problem, 12.0, "did not finish")
    assert (verdict.correct, verdict.reason) == (False, "timeout")
    assert parallel.sample_budget(problem) == code.LIMITS.timeout + parallel.MARGIN
