"""Verification throughput, each figure against a baseline measured in the same run:

- math: verifications/s in one process against the pool on all cores;
- code: HumanEval canonical solutions/s through the pool, the sandboxed two-process harness of issue #13
  against the harness it replaced (benchmarks/baseline_harness.py, frozen for this purpose), rounds
  alternating, with the new harness's split between sandbox start-up and the tests;
- pathological completions: seconds per verification of 1 MB with 10,000 unclosed \\boxed{, 20,000
  blank lines and 10,000 unclosed fences, against a normal 1 MB completion, for each kind of problem.

Usage:
    python benchmarks/verify.py                  # 10,000 math samples, all 164 HumanEval solutions
    python benchmarks/verify.py --math 2000 --code 40 --workers 4
    python benchmarks/verify.py --math 0 --code 164 --workers 2 --rounds 2   # the code comparison only

The math samples come from MATH-500 answers (8 samples per problem, in a run's order: the reference
boxed or after "The final answer is", or a neighbour's answer) and from toy problems (gold traces and
off-by-one answers). Parse caches are cleared before each measurement. The pool's speed-up is
printed as a ratio against the number of worker processes (target: >= 0.8 x cores).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

from distill.problems import load_problems
from distill.records import Problem, Sample
from distill.toy.problems import generate
from distill.verify import math as vmath
from distill.verify import registry
from distill.verify.parallel import default_workers, verify_stream

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_harness  # noqa: E402  (the pre-#13 code verifier, for the comparison only)


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


def measure_code(by_id: dict[str, Problem], samples: list[Sample], workers: int, verifier) -> tuple[float, list]:
    """Seconds to verify the code samples with `verifier` as the code verifier, and the verdicts."""
    saved = registry.VERIFIERS["code"]
    registry.VERIFIERS["code"] = verifier  # the workers are forked after this, so they use it too
    try:
        started = time.perf_counter()
        verdicts = [v for _, v in verify_stream(by_id, samples, workers=workers, batch_size=4)]
        return time.perf_counter() - started, verdicts
    finally:
        registry.VERIFIERS["code"] = saved


def code_comparison(n: int, workers: int, rounds: int) -> None:
    """Old harness against the new one on the first `n` HumanEval canonical solutions, `rounds` times each."""
    problems = load_problems("humaneval")[:n]
    by_id = {p.id: p for p in problems}
    samples = [Sample(p.id, 0, "", f"```python\n{p.answer}\n```") for p in problems]
    new_verifier = registry.VERIFIERS["code"]
    old_verifier = baseline_harness.verify_code
    times: dict[str, list[float]] = {"old": [], "new": []}
    splits = []
    print(f"code: {len(samples)} HumanEval canonical solutions, {workers} workers, {rounds} rounds (old, new, ...)")
    for round_ in range(rounds):
        for name, verifier in (("old", old_verifier), ("new", new_verifier)):
            seconds, verdicts = measure_code(by_id, samples, workers, verifier)
            passed = sum(v.correct is True for v in verdicts)
            times[name].append(seconds)
            print(f"  round {round_ + 1} {name}: {len(samples) / seconds:6.1f} samples/s ({seconds:.1f} s, {passed} passed)")
            if name == "new":
                splits += [v.details.get("seconds") or {} for v in verdicts]
    old_s, new_s = min(times["old"]), min(times["new"])
    print(f"  best old {len(samples) / old_s:6.1f} samples/s, best new {len(samples) / new_s:6.1f} samples/s")
    print(f"  time per sample new/old = {new_s / old_s:.2f} (aim <= 1.5)")
    startup = [s["startup"] for s in splits if s.get("startup") is not None]
    loaded = [s["loaded"] - s["startup"] for s in splits if s.get("loaded") is not None and s.get("startup") is not None]
    tests = [s["total"] - s["loaded"] for s in splits if s.get("loaded") is not None and s.get("total") is not None]
    extract = [s["extract"] for s in splits if s.get("extract") is not None]
    total = [s["total"] for s in splits if s.get("total") is not None]
    print("  new harness, per sample (median ms): extract {:.1f}, sandbox start-up (both processes ready) {:.1f}, "
          "program load {:.1f}, tests and teardown {:.1f}, total {:.1f}".format(
              *(1000 * statistics.median(x or [0.0]) for x in (extract, startup, loaded, tests, total))))


PATHOLOGICAL = {
    "normal 1 MB": ("Let me think about this step by step, carefully. " * 20 + "\n") * 1000,
    "1 MB, 10,000 unclosed \\boxed{": ("so \\boxed{" + "x" * 90) * 10_000,
    "20,000 blank lines": "\n" * 20_000,
    "10,000 unclosed fences": "```python " * 10_000 + "print(1)",
}


def pathological() -> None:
    """Seconds per verification of each pathological completion, per kind, against a normal 1 MB one."""
    problems = {
        "math": Problem(id="m", prompt="?", answer="42"),
        "choice": Problem(id="c", prompt="?", kind="choice", answer="B", choices=["a", "b"]),
        "exact": Problem(id="e", prompt="?", kind="exact", answer="42"),
        "code": Problem(id="k", prompt="?", kind="code",
                        tests={"type": "asserts", "asserts": ["assert f() == 1"], "setup": "", "entry_point": "f"}),
    }
    endings = {"math": "\nSo the answer is \\boxed{42}.", "choice": "\nAnswer: (B)", "exact": "\n42",
               "code": "\n```python\ndef f():\n    return 1\n```\n"}
    print("pathological completions: seconds per verification (the normal one ends with a right answer)")
    print(f"  {'completion':32s}" + "".join(f"{kind:>9s}" for kind in problems))
    registry.verify_sample(problems["math"], Sample("m", 0, "", "\\boxed{42}"))  # math-verify's first import
    for name, text in PATHOLOGICAL.items():
        cells = []
        for kind, problem in problems.items():
            content = text + endings[kind] if name == "normal 1 MB" else text
            started = time.perf_counter()
            registry.verify_sample(problem, Sample(problem.id, 0, "", content))
            cells.append(time.perf_counter() - started)
        print(f"  {name:32s}" + "".join(f"{c:9.3f}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--math", type=int, default=10_000, help="math samples (default 10,000; 0 skips)")
    parser.add_argument("--code", type=int, default=164, help="HumanEval solutions (default all 164; 0 skips)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="pool size (default: all cores)")
    parser.add_argument("--rounds", type=int, default=2, help="old/new code rounds, alternating (default 2)")
    parser.add_argument("--no-pathological", action="store_true", help="skip the pathological completions")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cores = args.workers

    if args.math:
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
        code_comparison(args.code, cores, args.rounds)
    if not args.no_pathological:
        pathological()


if __name__ == "__main__":
    main()
