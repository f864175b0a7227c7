"""Benchmark the transformers sampling backend on R1-like long-tailed lengths.

    python benchmarks/sampling.py                 # default: 96 problems, batch 8, 1 thread (a few minutes)
    python benchmarks/sampling.py --problems 300 --batch-size 16 --threads 2

Prompt lengths are drawn log-normal (a long tail, like competition problems), and each completion's
length is log-normal too and correlated with its prompt's (longer problems get longer traces, as in
R1's traces). A logits processor ends each completion at its drawn length, so both runs generate
exactly the same tokens' worth of work. Printed, from one run of this script:

1. tokens/s of the backend with rows grouped by prompt length, against plain batched `generate` over
   the problems in input order with the same batch size (the same backend with sorting off): a ratio
   (target >= 1.3x);
2. the cost of the store: `generate_run` (manifest, one flushed JSONL line per sample, summary)
   against streaming the backend alone, on the same loaded teacher (target <= 10 % overhead).

With `--vllm` (in the venv that has vLLM, .venv-vllm from `scripts/setup.sh test`), two more, on the
bundled tiny teacher (teachers/tiny, float32, eager) with one vLLM engine built once; its construction
time is printed apart and counted in neither arm:

3. the vllm backend against the transformers backend: tokens/s over the same drawn prompts and lengths
   (vLLM gets min_tokens = max_tokens = the drawn length, transformers the same length through the
   logits processor), on the same number of threads;
4. the whole `distill generate --backend vllm` (`generate_run` with the vllm backend: prompt rendering
   and tokenization, the engine loop, decoding, the store) against a bare `LLM.generate` over the same
   pre-tokenized prompts with the backend's own SamplingParams (per-sample seeds, no token-by-token
   detokenization), so both arms generate the same tokens and the bare one decodes nothing (target
   <= 10 % overhead; the bare arm should run >= 60 s: raise --vllm-problems until it does).

    python benchmarks/sampling.py --vllm --threads 2 --vllm-problems 2000   # bare arm >= 60 s on 2 cores

vLLM binds its worker's OpenMP threads to cores: the script sets VLLM_CPU_OMP_THREADS_BIND to the first
--threads cores this process may use (unless it is set already) and prints the binding.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import random
import tempfile
import time
from pathlib import Path

import torch

from distill.records import Problem
from distill.sampling import SamplingConfig, Teacher, generate_run
from distill.sampling.backends.transformers_backend import TransformersBackend
from distill.sampling.profile import LocalOptions, TeacherProfile
from distill.toy.model import make_tiny_model

REPO = Path(__file__).resolve().parent.parent
WORDS = "apples coins books stamps shells cards beads pens has gets more gives away then times".split()


class LengthShaper:
    """Ends each row's completion at the length drawn for its prompt (EOS before it is masked)."""

    def __init__(self, lengths: dict[tuple[int, ...], int], eos: int, pad: int) -> None:
        self.lengths, self.eos, self.pad = lengths, eos, pad
        self.prefix: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        prefix = self.prefix
        if (prefix is None or input_ids.shape[0] != prefix.shape[0] or input_ids.shape[1] <= prefix.shape[1]
                or not torch.equal(input_ids[:, : prefix.shape[1]], prefix)):
            self.prefix = prefix = input_ids.clone()  # the first step of a new batch: its prompts
        width = prefix.shape[1]
        step = input_ids.shape[1] - width
        for row in range(input_ids.shape[0]):
            prompt = tuple(t for t in prefix[row].tolist() if t != self.pad)
            target = self.lengths.get(prompt, 1)
            if step + 1 >= target:
                scores[row, :] = -math.inf
                scores[row, self.eos] = 0.0
            else:
                scores[row, self.eos] = -math.inf
        return scores


def draw(n: int, seed: int, max_new_tokens: int) -> tuple[list[Problem], list[int]]:
    """Problems with long-tailed prompt lengths and correlated long-tailed completion lengths."""
    rng = random.Random(seed)
    problems, lengths = [], []
    for i in range(n):
        z = rng.gauss(0, 1)
        words = max(3, min(400, int(math.exp(3.0 + 0.8 * z))))
        problems.append(Problem(id=f"b{i}", prompt=" ".join(rng.choice(WORDS) for _ in range(words))))
        length = math.exp(math.log(max_new_tokens / 6) + 0.7 * z + 0.5 * rng.gauss(0, 1))
        lengths.append(max(2, min(max_new_tokens, int(length))))
    return problems, lengths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vllm", action="store_true", help="Also compare the vllm backend (needs vLLM).")
    parser.add_argument("--vllm-problems", type=int, default=2000,
                        help="Toy problems (x 4 samples) for the distill-generate-against-bare-vLLM comparison.")
    parser.add_argument("--rounds", type=int, default=2, help="Alternating rounds of that comparison (best of each).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.vllm:
        run_vllm_benchmarks(args)
        return
    model, tokenizer = make_tiny_model(hidden_size=128, num_layers=2)
    problems, targets = draw(args.problems, args.seed, args.max_new_tokens)
    config = SamplingConfig(n=1, max_new_tokens=args.max_new_tokens, seed=args.seed)

    def teacher(sort: bool) -> tuple[Teacher, LengthShaper]:
        profile = TeacherProfile(name="bench", model="tiny", local=LocalOptions(batch_size=args.batch_size, sort_by_length=sort))
        backend = TransformersBackend(profile, model=model, tokenizer=tokenizer)
        from distill.sampling.prompts import build_prompt, render_prompt

        lengths = {tuple(tokenizer(render_prompt(build_prompt(p, profile), tokenizer, profile),
                                   add_special_tokens=False)["input_ids"]): t for p, t in zip(problems, targets, strict=True)}
        shaper = LengthShaper(lengths, tokenizer.eos_token_id, tokenizer.pad_token_id)
        backend.logits_processor = [shaper]
        return Teacher(profile, backend), shaper

    def timed_stream(sort: bool) -> tuple[float, int]:
        t, _ = teacher(sort)
        start = time.perf_counter()
        tokens = sum(s.completion_tokens or 0 for s in t.stream(problems, config))
        return time.perf_counter() - start, tokens

    timed_stream(True)  # warm-up
    results = {}
    for label, sort in (("input order", False), ("grouped by length", True)):
        seconds, tokens = timed_stream(sort)
        results[label] = (seconds, tokens)
        print(f"{label:>18}: {tokens} tokens in {seconds:.2f} s = {tokens / seconds:.0f} tokens/s")
    base, grouped = (results[k][1] / results[k][0] for k in ("input order", "grouped by length"))
    print(f"ratio grouped/input order: {grouped / base:.2f}x (target >= 1.3x)")

    # Alternate the two, twice, and keep each one's best time: on a shared machine the noise between
    # two runs is larger than the store's cost.
    alone_times, stored_times = [], []
    for _ in range(2):
        alone_times.append(timed_stream(True)[0])
        with tempfile.TemporaryDirectory() as tmp:
            t, _ = teacher(True)
            start = time.perf_counter()
            summary = generate_run(problems, dataclasses.replace(t.profile), config, f"{tmp}/run", teacher=t, progress=False)
            stored_times.append(time.perf_counter() - start)
    alone, stored = min(alone_times), min(stored_times)
    print(f"store: backend alone {alone:.2f} s, generate_run with the store {stored:.2f} s "
          f"({summary['samples']} samples): overhead {100 * (stored / alone - 1):+.1f} % (target <= 10 %)")
    print(f"settings: {args.problems} problems, batch {args.batch_size}, max {args.max_new_tokens} new tokens, "
          f"{args.threads} thread(s), tiny qwen2 (hidden 128, 2 layers)")


def bind_vllm_threads(threads: int) -> str:
    """Bind vLLM's CPU worker to as many cores as the transformers arm has threads (unless already set)."""

    cores = sorted(os.sched_getaffinity(0))[:threads]
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(str(c) for c in cores))
    return os.environ["VLLM_CPU_OMP_THREADS_BIND"]


def tiny_vllm_profile() -> TeacherProfile:
    """The bundled tiny teacher on vLLM: float32 as trained, eager (no compile step)."""
    from distill.sampling import resolve_teacher
    from distill.sampling.profile import VllmOptions

    profile = resolve_teacher(teacher="tiny", backend="vllm")
    # vLLM's CPU build refuses to start unless gpu_memory_utilization x RAM is free; other processes hold some.
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return dataclasses.replace(profile, vllm=VllmOptions(dtype="float32", enforce_eager=True, max_model_len=1024,
                                                         gpu_memory_utilization=0.5))


def bare_inputs(problems: list[Problem], profile: TeacherProfile, config: SamplingConfig,
                tokenizer) -> tuple[list, list]:
    """What a bare `LLM.generate` gets for the same samples as the backend: each sample's pre-tokenized
    prompt and its own `SamplingParams` (the backend's keyword arguments and per-sample seed)."""
    import vllm
    from vllm.inputs import TokensPrompt

    from distill.sampling.backends import vllm_backend
    from distill.sampling.backends.base import sample_seed
    from distill.sampling.prompts import build_prompt, render_prompt

    prompts, params = [], []
    for problem in problems:
        ids = tokenizer(render_prompt(build_prompt(problem, profile), tokenizer, profile), add_special_tokens=False)["input_ids"]
        for index in range(config.n):
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            params.append(vllm.SamplingParams(**vllm_backend.sampling_kwargs(config, sample_seed(config.seed, problem.id, index))))
    return prompts, params


def run_vllm_benchmarks(args: argparse.Namespace) -> None:
    """Comparisons 3 and 4 of the module docstring, on one engine."""
    import vllm

    from distill.sampling.backends import vllm_backend
    from distill.sampling.backends.base import sample_seed
    from distill.sampling.prompts import build_prompt, render_prompt

    binding = bind_vllm_threads(args.threads)
    profile = tiny_vllm_profile()
    hf_profile = dataclasses.replace(profile, backend="transformers",
                                     local=LocalOptions(batch_size=args.batch_size, sort_by_length=True))
    hf = TransformersBackend(hf_profile)
    tokenizer = hf.tokenizer

    # 3. vllm backend against transformers backend, same prompts and drawn lengths. The transformers arm
    # runs before the engine exists: vLLM's idle worker keeps its bound cores busy, and a transformers run
    # beside it measured 21 tokens/s instead of hundreds (the first --vllm run, BENCHMARKS.md).
    problems, targets = draw(args.problems, args.seed, args.max_new_tokens)
    kept = []
    for problem, target in zip(problems, targets, strict=True):
        ids = tokenizer(render_prompt(build_prompt(problem, profile), tokenizer, profile), add_special_tokens=False)["input_ids"]
        if len(ids) + target <= 1024:  # the tiny teacher's context
            kept.append((problem, target, tuple(ids)))
    problems = [p for p, _, _ in kept]
    config = SamplingConfig(n=1, max_new_tokens=args.max_new_tokens, seed=args.seed)
    by_seed = {sample_seed(config.seed, p.id, 0): t for p, t, _ in kept}
    hf.logits_processor = [LengthShaper({ids: t for _, t, ids in kept}, tokenizer.eos_token_id, tokenizer.pad_token_id)]

    def best_of_two(teacher: Teacher) -> tuple[float, int]:
        runs = []
        for _ in range(2):
            start = time.perf_counter()
            tokens = sum(s.completion_tokens or 0 for s in teacher.stream(problems, config))
            runs.append((time.perf_counter() - start, tokens))
        return min(runs)

    torch.set_num_threads(args.threads)
    best = {"transformers": best_of_two(Teacher(hf_profile, hf))}
    hf.close()

    started = time.perf_counter()
    llm = vllm.LLM(**vllm_backend.llm_kwargs(profile, cpu=True))
    construction = time.perf_counter() - started
    backend = vllm_backend.VllmBackend(profile, llm=llm)
    assert backend.tokenizer(render_prompt(build_prompt(problems[0], profile), backend.tokenizer, profile),
                             add_special_tokens=False)["input_ids"] == list(kept[0][2]), "the arms tokenize differently"

    def shaped(config: SamplingConfig, seed: int) -> dict:
        # Each request generates exactly its drawn length, as the logits processor makes transformers do.
        kwargs = plain_kwargs(config, seed)
        kwargs.update(min_tokens=by_seed[seed], max_tokens=by_seed[seed])
        return kwargs

    plain_kwargs = vllm_backend.sampling_kwargs
    vllm_backend.sampling_kwargs = shaped
    best["vllm"] = best_of_two(Teacher(profile, backend))
    vllm_backend.sampling_kwargs = plain_kwargs
    rates = {label: tokens / seconds for label, (seconds, tokens) in best.items()}
    for label, (seconds, tokens) in best.items():
        print(f"{label:>13}: {tokens} tokens in {seconds:.2f} s = {rates[label]:.0f} tokens/s (best of 2)")
    print(f"ratio vllm/transformers: {rates['vllm'] / rates['transformers']:.2f}x tokens/s "
          f"({len(problems)} drawn prompts, batch {args.batch_size} for transformers; transformers ran first, "
          f"alone, on {args.threads} torch thread(s))")

    # 4. The whole distill generate against bare LLM.generate, same prompts, seeds and engine.
    from distill.toy.problems import generate as toy_problems

    toy = [p for p, _ in toy_problems(args.vllm_problems, seed=args.seed)]
    config = profile.sampling.replace(n=4, seed=args.seed)
    prompts, params = bare_inputs(toy, profile, config, tokenizer)
    bare_times, whole_times = [], []
    for _ in range(args.rounds):  # alternating, best of each: the noise of a shared machine exceeds the overhead
        llm.reset_prefix_cache()
        start = time.perf_counter()
        outputs = llm.generate(prompts, params, use_tqdm=False)
        bare_times.append(time.perf_counter() - start)
        llm.reset_prefix_cache()
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            summary = generate_run(toy, profile, config, f"{tmp}/run", teacher=Teacher(profile, backend), progress=False)
            whole_times.append(time.perf_counter() - start)
    bare, whole = min(bare_times), min(whole_times)
    bare_tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    rounds = ", ".join(f"{b:.1f}/{w:.1f}" for b, w in zip(bare_times, whole_times, strict=True))
    print(f"bare LLM.generate: {len(outputs)} samples, {bare_tokens} tokens in {bare:.1f} s ({bare_tokens / bare:.0f} "
          f"tokens/s, best of {args.rounds})" + ("" if bare >= 60 else "; below the 60 s asked for: raise --vllm-problems"))
    print(f"distill generate (generate_run, vllm backend): {summary['samples']} samples, {summary['completion_tokens']} "
          f"tokens in {whole:.1f} s (best of {args.rounds}): overhead {100 * (whole / bare - 1):+.1f} % (target <= 10 %); "
          f"each round, bare/distill: {rounds} s")
    print(f"engine construction (in neither arm): {construction:.1f} s; VLLM_CPU_OMP_THREADS_BIND={binding}, "
          f"torch threads {args.threads} for transformers; tiny teacher float32, eager, prefix cache reset before each arm")


if __name__ == "__main__":
    main()
