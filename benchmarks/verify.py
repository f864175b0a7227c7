"""Verification throughput: math verifications/s in one process against the pool on all cores, and
code verifications/s on HumanEval's canonical solutions, measured in the same run.

Usage:
    python benchmarks/verify.py                  # 10,000 math samples, all 164 HumanEval solutions
    python benchmarks/verify.py --math 2000 --code 40 --workers 4

The math samples come from MATH-500 answers (8 samples per problem, in a run's order: the reference
boxed or after "The final answer is", or a neighbour's answer) and from toy problems (gold traces and
off-by-one answers). Parse caches are cleared before each measurement. The pool's speed-up is
printed as a ratio against the number of worker processes (target: >= 0.8 x cores).
"""

from __future__ import annotations

import argparse
import logging
import time

from distill.problems import load_problems
from distill.records import Problem, Sample
from distill.toy.problems import generate
from distill.verify import math as vmath
from distill.verify.parallel import default_workers, verify_stream


def math_workload(n: int, per_problem: int = 8) -> tuple[dict[str, Problem], list[Sample]]:
    """Half MATH-500, half toy problems, `n` samples in all.

    MATH-500 samples come `per_problem` to a problem, one after another, as a run stores them: the
    reference boxed, the answer after "The final answer is", or a neighbour's (wrong) answer, with
    varied wording. Toy samples are one per problem: the gold trace's answer or an off-by-one.
    """
    problems = load_problems("math500")
    by_id = {p.id: p for p in problems}
    samples: list[Sample] = []
    forms = ("The answer is $\\boxed{{{}}}$.", "The final answer is ${}$.", "So we get \\boxed{{{}}}.")
    i = 0
    while len(samples) < n // 2:
        p = problems[(i // per_problem) % len(problems)]
        other = problems[(i // per_problem + 1) % len(problems)]
        answer = p.answer if i % 3 else other.answer
        samples.append(Sample(p.id, i % per_problem, "", forms[i % len(forms)].format(answer)))
        i += 1
    for j, (p, gold) in enumerate(generate(n - len(samples), seed=11)):
        by_id[p.id] = p
        _, _, content = gold.partition("</think>")
        if j % 2:
            content = f"The answer is \\boxed{{{int(p.answer) + 1}}}."
        samples.append(Sample(p.id, 0, "", content))
    return by_id, samples


def measure(by_id: dict[str, Problem], samples: list[Sample], workers: int) -> tuple[float, int]:
    """Seconds to verify all samples with `workers` processes, and how many were correct."""
    vmath._parse.cache_clear()
    started = time.perf_counter()
    correct = sum(v.correct is True for _, v in verify_stream(by_id, samples, workers=workers, batch_size=16))
    return time.perf_counter() - started, correct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--math", type=int, default=10_000, help="math samples (default 10,000)")
    parser.add_argument("--code", type=int, default=164, help="HumanEval solutions (default all 164)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="pool size (default: all cores)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cores = args.workers

    by_id, samples = math_workload(args.math)
    one_s, one_ok = measure(by_id, samples, 1)
    pool_s, pool_ok = measure(by_id, samples, cores)
    assert one_ok == pool_ok, "the pool must give the same verdicts as one process"
    speedup = one_s / pool_s
    print(f"math: {len(samples)} samples, {one_ok} correct")
    print(f"  1 process : {len(samples) / one_s:8.1f} verifications/s ({one_s:.1f} s)")
    print(f"  {cores} workers : {len(samples) / pool_s:8.1f} verifications/s ({pool_s:.1f} s)")
    print(f"  speed-up {speedup:.2f}x on {cores} workers = {speedup / cores:.2f} x cores (target >= 0.80)")

    if args.code:
        problems = load_problems("humaneval")[: args.code]
        code_by_id = {p.id: p for p in problems}
        code_samples = [Sample(p.id, 0, "", f"```python\n{p.answer}\n```") for p in problems]
        c1_s, c1_ok = measure(code_by_id, code_samples, 1)
        cp_s, cp_ok = measure(code_by_id, code_samples, cores)
        print(f"code: {len(code_samples)} HumanEval canonical solutions, {c1_ok} and {cp_ok} passed")
        print(f"  1 process : {len(code_samples) / c1_s:8.1f} verifications/s ({c1_s:.1f} s)")
        print(f"  {cores} workers : {len(code_samples) / cp_s:8.1f} verifications/s ({cp_s:.1f} s)"
              f" = {c1_s / cp_s / cores:.2f} x cores")


if __name__ == "__main__":
    main()
