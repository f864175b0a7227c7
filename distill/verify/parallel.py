"""Verify a stream of samples over worker processes: input order kept, a bounded window of batches in
flight so that memory stays bounded however long the stream, and a watchdog.

The watchdog: every worker reports each verdict as it finishes, so the parent knows how long the
current sample has taken. A worker past its sample's budget (`sample_budget`: the verifier's own
time limit plus `MARGIN`), say one stuck in C code that ignores signals, is killed; that sample is
judged `timeout`, the rest of its batch goes to a fresh worker, and later samples are still judged
and yielded in order. (The sandboxes a killed worker had started die with it.)

multiprocessing.Pool cannot do this (it has no way to kill one task), hence the small pool here.
"""

from __future__ import annotations

import itertools
import multiprocessing
import multiprocessing.connection
import os
import pickle
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from distill.records import Problem, Sample, Verdict
from distill.verify import code as vcode
from distill.verify import math as vmath
from distill.verify.registry import apply_verdict, verify_sample
from distill.verify.selftest import ensure_sandbox, self_test
from distill.verify.timeout import WALL_FACTOR

MARGIN = 10.0
"""Seconds past a verifier's own time limit before the watchdog kills its worker."""


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def sample_budget(problem: Problem) -> float:
    """Wall seconds a worker may spend on one sample of `problem` before the watchdog kills it."""
    if problem.kind == "code":
        cases = len((problem.tests or {}).get("cases") or []) if (problem.tests or {}).get("type") == "stdio" else 1
        return vcode.LIMITS.timeout * max(1, cases) + MARGIN
    if problem.kind == "math":
        return vmath.TIME_LIMIT * WALL_FACTOR + MARGIN
    return MARGIN


def watchdog_verdict(problem: Problem, seconds: float, what: str) -> Verdict:
    """The verdict of a sample whose worker the watchdog killed (`what` happened): `timeout`, wrong for
    code (as a program past its limit is), not judged for the other kinds (as a math-verify timeout is)."""
    return Verdict(False if problem.kind == "code" else None, "timeout", verifier=problem.kind,
                   details={"error": f"the verifier {what} after {seconds:.1f} s; its worker was killed"})


def _work(conn: Any, problems: Mapping[str, Problem], answer_format: str, unsafe: bool) -> None:
    """A worker: judge each batch it is sent, one message per verdict, until the pipe closes."""
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        batch_id, start, samples = task
        for offset, sample in enumerate(samples):
            try:
                verdict = verify_sample(problems[sample.problem_id], sample, answer_format, unsafe)
            except BaseException as err:  # noqa: B036 (sent to the parent, which raises it)
                try:
                    pickle.dumps(err)
                except Exception:
                    err = RuntimeError(f"{type(err).__name__}: {err}")
                conn.send(("error", batch_id, start + offset, err))
                return
            conn.send(("ok", batch_id, start + offset, verdict))


@dataclass
class _Batch:
    samples: list[Sample]
    verdicts: list[Verdict | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.verdicts = [None] * len(self.samples)

    @property
    def complete(self) -> bool:
        return all(v is not None for v in self.verdicts)


class _Worker:
    def __init__(self, ctx: Any, problems: Mapping[str, Problem], answer_format: str, unsafe: bool) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_work, args=(child, problems, answer_format, unsafe), daemon=True)
        self.proc.start()
        child.close()
        self.batch: int | None = None
        self.index = 0  # the sample of `batch` it is on
        self.end = 0
        self.since = 0.0  # when it started on that sample
        self.dead = False

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.conn.close()


def verify_stream(problems_by_id: Mapping[str, Problem], samples: Iterable[Sample], workers: int | None = None,
                  answer_format: str = "after_think", batch_size: int = 8, window: int | None = None,
                  unsafe_no_sandbox: bool = False) -> Iterator[tuple[Sample, Verdict]]:
    """Yield `(sample, verdict)` for each sample, in input order.

    Every sample's problem must be in `problems_by_id` (a KeyError names the first that is not).
    `workers` processes (default: all cores; 1 = in this process, without the watchdog) judge batches
    of `batch_size`; at most `window` batches (default 4 per worker) are in flight at once. Code needs
    the sandbox (`SandboxUnavailable` before any work) unless `unsafe_no_sandbox`.
    """
    workers = default_workers() if workers is None else max(1, workers)

    def checked(stream: Iterable[Sample]) -> Iterator[Sample]:
        sandbox_checked = unsafe_no_sandbox
        for sample in stream:
            if sample.problem_id not in problems_by_id:
                raise KeyError(f"problem_id {sample.problem_id!r} is not in the problem set")
            if not sandbox_checked and problems_by_id[sample.problem_id].kind == "code":
                ensure_sandbox()  # refuse before the first code sample goes anywhere
                sandbox_checked = True
            yield sample

    if any(p.kind == "code" for p in problems_by_id.values()):
        # Run the self-test (or log the unsafe opt-in) here, once: forked workers inherit the result.
        # The refusal itself waits for the first code sample, so that math alone still runs without it.
        if unsafe_no_sandbox:
            ensure_sandbox(unsafe_no_sandbox=True)
        else:
            self_test()
    if workers == 1:
        for sample in checked(samples):
            yield sample, verify_sample(problems_by_id[sample.problem_id], sample, answer_format, unsafe_no_sandbox)
        return
    yield from _pool(problems_by_id, checked(samples), workers, answer_format, batch_size, window or 4 * workers,
                     unsafe_no_sandbox)


def _pool(problems: Mapping[str, Problem], samples: Iterator[Sample], size: int, answer_format: str,
          batch_size: int, window: int, unsafe: bool) -> Iterator[tuple[Sample, Verdict]]:
    ctx = multiprocessing.get_context("fork")  # workers inherit the problems and the sandbox's self-test
    pool = [_Worker(ctx, problems, answer_format, unsafe) for _ in range(size)]
    batches: dict[int, _Batch] = {}
    queue: deque[tuple[int, int]] = deque()  # (batch, first sample) waiting for a worker
    source = iter(lambda: list(itertools.islice(samples, batch_size)), [])
    next_id = next_out = 0
    exhausted = False
    try:
        while True:
            while not exhausted and len(batches) < window:
                batch = next(source, None)
                if batch is None:
                    exhausted = True
                    break
                batches[next_id] = _Batch(batch)
                queue.append((next_id, 0))
                next_id += 1
            for worker in pool:
                if worker.batch is None and queue:
                    worker.batch, worker.index = queue.popleft()
                    worker.end = len(batches[worker.batch].samples)
                    worker.since = time.monotonic()
                    worker.conn.send((worker.batch, worker.index, batches[worker.batch].samples[worker.index :]))
            while next_out in batches and batches[next_out].complete:
                done = batches.pop(next_out)
                yield from zip(done.samples, done.verdicts, strict=True)  # type: ignore[misc]
                next_out += 1
            if exhausted and not batches:
                return
            busy = [w for w in pool if w.batch is not None]
            if not busy:
                continue  # everything in flight is judged: take in more
            now = time.monotonic()
            wait = min(w.since + sample_budget(problems[_current(batches, w).problem_id]) - now for w in busy)
            ready = multiprocessing.connection.wait([w.conn for w in busy], timeout=max(0.0, wait))
            for worker in busy:
                if worker.conn in ready:
                    _receive(worker, batches)
            now = time.monotonic()
            for i, worker in enumerate(pool):
                if worker.batch is None:
                    continue
                problem = problems[_current(batches, worker).problem_id]
                if worker.dead or now - worker.since > sample_budget(problem):
                    what = "crashed" if worker.dead else "did not finish"
                    batches[worker.batch].verdicts[worker.index] = watchdog_verdict(problem, now - worker.since, what)
                    if worker.index + 1 < worker.end:
                        queue.appendleft((worker.batch, worker.index + 1))
                    worker.kill()
                    pool[i] = _Worker(ctx, problems, answer_format, unsafe)
    finally:
        for worker in pool:
            worker.kill()


def _current(batches: dict[int, _Batch], worker: _Worker) -> Sample:
    return batches[worker.batch].samples[worker.index]  # type: ignore[index]


def _receive(worker: _Worker, batches: dict[int, _Batch]) -> None:
    """Take one message from a worker: a verdict (it moves on to its next sample) or an error (raised)."""
    try:
        kind, batch_id, index, payload = worker.conn.recv()
    except (EOFError, OSError):
        worker.dead = True  # the watchdog pass replaces it
        return
    if kind == "error":
        raise payload
    batches[batch_id].verdicts[index] = payload
    worker.index = index + 1
    worker.since = time.monotonic()
    if worker.index >= worker.end:
        worker.batch = None


def verify_samples(problems_by_id: Mapping[str, Problem], samples: Iterable[Sample], workers: int | None = None,
                   answer_format: str = "after_think", unsafe_no_sandbox: bool = False) -> Iterator[Sample]:
    """Yield each sample with its verdict fields set (`correct`, `reason`, `extracted`, `verifier`), in input order.

    >>> p = Problem(id="p", prompt="1+1?", answer="2")
    >>> [s.correct for s in verify_samples({"p": p}, [Sample("p", 0, "", "\\\\boxed{2}"),
    ...                                              Sample("p", 1, "", "\\\\boxed{3}")], workers=1)]
    [True, False]
    """
    for sample, verdict in verify_stream(problems_by_id, samples, workers, answer_format,
                                         unsafe_no_sandbox=unsafe_no_sandbox):
        yield apply_verdict(sample, verdict)
