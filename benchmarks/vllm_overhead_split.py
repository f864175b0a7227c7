"""Where the overhead of `distill generate --backend vllm` over a bare `LLM.generate` goes (issue #15).

    .venv-vllm/bin/python benchmarks/vllm_overhead_split.py [--problems 2400] [--rounds 2]

One engine on the tiny teacher (as comparison 4 of benchmarks/sampling.py: same prompts, per-sample seeds
and SamplingParams, 4 samples per toy problem, 2 vLLM threads bound to cores 0 and 1), four arms run in
turn each round, the prefix cache reset before each:
- `bare`: `LLM.generate` over the pre-tokenized prompts;
- `stream`: the backend's own request loop (`VllmBackend.stream`, prompt rendering and decoding included),
  its completions consumed and dropped: what driving the engine costs;
- `stream-nocap`: the same with the backend's cap on queued requests (`MAX_IN_FLIGHT`) lifted to 2^20;
- `whole`: `generate_run`, the whole `distill generate` with its run store.
It prints each round's seconds and, best of the rounds, each arm's overhead over `bare`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import sampling as bench  # noqa: E402  (benchmarks/sampling.py: the profile, thread binding and bare inputs)

from distill.sampling import Teacher, generate_run  # noqa: E402
from distill.sampling.backends import vllm_backend  # noqa: E402
from distill.sampling.backends.base import Request  # noqa: E402
from distill.sampling.prompts import build_prompt  # noqa: E402
from distill.toy.problems import generate as toy_problems  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=2400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import vllm

    binding = bench.bind_vllm_threads(2)
    profile = bench.tiny_vllm_profile()
    llm = vllm.LLM(**vllm_backend.llm_kwargs(profile, cpu=True))
    backend = vllm_backend.VllmBackend(profile, llm=llm)
    problems = [p for p, _ in toy_problems(args.problems, seed=0)]
    config = profile.sampling.replace(n=4, seed=0)
    prompts, params = bench.bare_inputs(problems, profile, config, backend.tokenizer)
    requests = [Request(p.id, build_prompt(p, profile), list(range(config.n))) for p in problems]
    cap = vllm_backend.MAX_IN_FLIGHT

    def bare() -> None:
        llm.generate(prompts, params, use_tqdm=False)

    def stream() -> None:
        for _ in backend.stream(requests, config):
            pass

    def stream_nocap() -> None:
        vllm_backend.MAX_IN_FLIGHT = 2 ** 20
        try:
            stream()
        finally:
            vllm_backend.MAX_IN_FLIGHT = cap

    def whole() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            generate_run(problems, profile, config, f"{tmp}/run", teacher=Teacher(profile, backend), progress=False)

    arms = {"bare": bare, "stream": stream, "stream-nocap": stream_nocap, "whole": whole}
    times: dict[str, list[float]] = {name: [] for name in arms}
    for round_ in range(args.rounds):
        for name, arm in arms.items():
            llm.reset_prefix_cache()
            start = time.perf_counter()
            arm()
            times[name].append(time.perf_counter() - start)
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {t[-1]:.1f} s" for n, t in times.items()), flush=True)
    best = {name: min(t) for name, t in times.items()}
    print(f"{len(prompts)} samples; best of {args.rounds}: " + ", ".join(
        f"{n} {s:.1f} s ({100 * (s / best['bare'] - 1):+.1f} %)" for n, s in best.items())
        + f"; VLLM_CPU_OMP_THREADS_BIND={binding}")


if __name__ == "__main__":
    main()
