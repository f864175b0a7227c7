"""Throughput and peak memory of `distill filter` on synthetic samples.

    python benchmarks/filter.py                 # 200,000 samples (CI-sized)
    python benchmarks/filter.py --n 1000000     # the issue's 1M-sample figure

Writes a synthetic run (8 samples per problem, ~100-word traces, with a share of truncated, wrong,
duplicated and looping samples) to a temporary directory, then measures in separate processes:
- baseline: read and validate every sample (json + Sample records), the floor any filter pays;
- filter: `filter_run` with the default config (decontamination against the shipped benchmarks,
  MinHash near-duplicates within each problem, all per-sample filters) plus `max_per_problem=4`.
Prints samples/s, the ratio to the baseline and each process's peak RSS (resource.getrusage).

Measured 2026-11-29 on the shared 2-core CI machine (one core, about half of it free), --n 1000000:
baseline 6,249 samples/s, 81 MB; filter 768 samples/s (1,303 s), peak RSS 333 MB (target < 1 GB).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("add subtract multiply carry column digit total value number first second then so check again "
         "result step sum product left right each apples coins books case both sides equation solve").split()


def make_run(run: Path, n: int, seed: int = 0) -> None:
    """Write problems.jsonl, manifest.json and samples/shard-0-of-1.jsonl with `n` samples."""
    rng = random.Random(seed)
    per_problem = 8
    n_problems = (n + per_problem - 1) // per_problem
    (run / "samples").mkdir(parents=True)
    with (run / "problems.jsonl").open("w") as handle:
        for p in range(n_problems):
            handle.write(json.dumps({"id": f"q{p}", "prompt": f"Problem {p}: Ann has {p} apples and gets {p % 97} more; "
                                     f"then {rng.choice(WORDS)} {rng.choice(WORDS)}. How many?", "answer": str(p),
                                     "source": "synthetic"}) + "\n")
    manifest = {"problems": {"source": str(run / "problems.jsonl"), "fingerprint": "synthetic", "count": n_problems},
                "teacher": {"name": "synthetic", "model": "synthetic"}, "sampling": {"temperature": 0.6, "top_p": 0.95}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    with (run / "samples" / "shard-0-of-1.jsonl").open("w") as handle:
        previous = ""
        for i in range(n):
            p, k = divmod(i, per_problem)
            roll = rng.random()
            reasoning = " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 140)))
            if roll < 0.02 and previous:
                reasoning = previous  # exact duplicate of the previous sample
            elif roll < 0.03:
                reasoning = "Wait, let me check that again from the start. " * 30
            previous = reasoning
            row = {"problem_id": f"q{p}", "sample_index": k, "reasoning": reasoning,
                   "content": f"The answer is \\boxed{{{p}}}.", "finish_reason": "length" if 0.03 <= roll < 0.08 else "stop",
                   "think_closed": True, "correct": not 0.08 <= roll < 0.2, "completion_tokens": len(reasoning.split()) + 8}
            handle.write(json.dumps(row) + "\n")


def worker(mode: str, run: Path) -> None:
    """Run one measured job in this process and print its figures as JSON."""
    start = time.perf_counter()
    if mode == "read":
        from distill.filters.inputs import parse_sample
        from distill.jsonl import scan_jsonl

        n = 0
        for line, _, obj in scan_jsonl(run / "samples" / "shard-0-of-1.jsonl"):
            parse_sample(obj, f"x:{line}")
            n += 1
    else:
        from distill.filters import filter_run, load_filter_config

        funnel = filter_run(run, run / "corpus", config=load_filter_config(None, ["selection.max_per_problem=4"]))
        n = funnel["entered"]
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"samples": n, "seconds": seconds, "peak_rss_mb": peak_mb}))


def measure(mode: str, run: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", mode, str(run)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000, help="synthetic samples (default 200,000; the issue asks 1M)")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "RUN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        t = time.perf_counter()
        make_run(run, args.n)
        size_mb = (run / "samples" / "shard-0-of-1.jsonl").stat().st_size / 2**20
        print(f"synthetic run: {args.n} samples, {size_mb:.0f} MB, written in {time.perf_counter() - t:.1f} s")
        base = measure("read", run)
        filt = measure("filter", run)
        funnel = json.loads((run / "corpus" / "funnel.json").read_text())
    print(f"baseline (read + validate): {base['samples'] / base['seconds']:,.0f} samples/s, "
          f"peak RSS {base['peak_rss_mb']:.0f} MB")
    print(f"distill filter:             {filt['samples'] / filt['seconds']:,.0f} samples/s, "
          f"peak RSS {filt['peak_rss_mb']:.0f} MB ({filt['seconds']:.1f} s)")
    print(f"ratio: filter takes {filt['seconds'] / base['seconds']:.1f}x the baseline's time; "
          f"peak RSS {filt['peak_rss_mb'] / base['peak_rss_mb']:.1f}x; target < 1024 MB: "
          f"{'met' if filt['peak_rss_mb'] < 1024 else 'NOT met'}")
    print("removed: " + ", ".join(f"{k} {v}" for k, v in funnel["removed"].items() if v) + f"; remaining {funnel['remaining']}")


if __name__ == "__main__":
    main()
