"""Verify a stream of samples over a process pool: input order kept, a bounded window of batches in
flight so that memory stays bounded however long the stream."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping

from distill.records import Problem, Sample, Verdict

_PROBLEMS: Mapping[str, Problem] = {}
_FORMAT = "after_think"


def _judge_batch(batch: list[Sample]) -> list[Verdict]:
    from distill.verify import verify_sample

    return [verify_sample(_PROBLEMS[s.problem_id], s, _FORMAT) for s in batch]


def _batches(samples: Iterable[Sample], size: int) -> Iterator[list[Sample]]:
    iterator = iter(samples)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def verify_stream(problems_by_id: Mapping[str, Problem], samples: Iterable[Sample], workers: int | None = None,
                  answer_format: str = "after_think", batch_size: int = 8,
                  window: int | None = None) -> Iterator[tuple[Sample, Verdict]]:
    """Yield `(sample, verdict)` for each sample, in input order.

    Every sample's problem must be in `problems_by_id` (a KeyError names the first that is not).
    `workers` processes (default: all cores; 1 = in this process) judge batches of `batch_size`;
    at most `window` batches (default 4 per worker) are in flight at once.
    """
    global _PROBLEMS, _FORMAT
    workers = default_workers() if workers is None else max(1, workers)

    def checked(stream: Iterable[Sample]) -> Iterator[Sample]:
        for sample in stream:
            if sample.problem_id not in problems_by_id:
                raise KeyError(f"problem_id {sample.problem_id!r} is not in the problem set")
            yield sample

    if workers == 1:
        from distill.verify import verify_sample

        for sample in checked(samples):
            yield sample, verify_sample(problems_by_id[sample.problem_id], sample, answer_format)
        return
    if any(p.kind == "code" for p in problems_by_id.values()):
        from distill.verify.sandbox import launcher

        launcher()  # probe the sandbox once here (and warn once), not in every worker
    # Workers are forked after these are set, so they inherit the problems without pickling them.
    _PROBLEMS, _FORMAT = problems_by_id, answer_format
    window = window or 4 * workers
    pool = multiprocessing.get_context("fork").Pool(workers)
    try:
        pending: deque = deque()
        for batch in _batches(checked(samples), batch_size):
            pending.append((batch, pool.apply_async(_judge_batch, (batch,))))
            while len(pending) >= window:
                done_batch, result = pending.popleft()
                yield from zip(done_batch, result.get(), strict=True)
        while pending:
            done_batch, result = pending.popleft()
            yield from zip(done_batch, result.get(), strict=True)
    finally:
        pool.terminate()
        pool.join()
        _PROBLEMS = {}


def verify_samples(problems_by_id: Mapping[str, Problem], samples: Iterable[Sample], workers: int | None = None,
                   answer_format: str = "after_think") -> Iterator[Sample]:
    """Yield each sample with its verdict fields set (`correct`, `reason`, `extracted`, `verifier`), in input order.

    >>> p = Problem(id="p", prompt="1+1?", answer="2")
    >>> [s.correct for s in verify_samples({"p": p}, [Sample("p", 0, "", "\\\\boxed{2}"),
    ...                                              Sample("p", 1, "", "\\\\boxed{3}")], workers=1)]
    [True, False]
    """
    from distill.verify import apply_verdict

    for sample, verdict in verify_stream(problems_by_id, samples, workers, answer_format):
        yield apply_verdict(sample, verdict)
