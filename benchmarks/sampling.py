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
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import tempfile
import time

import torch

from distill.records import Problem
from distill.sampling import SamplingConfig, Teacher, generate_run
from distill.sampling.backends.transformers_backend import TransformersBackend
from distill.sampling.profile import LocalOptions, TeacherProfile
from distill.toy.model import make_tiny_model

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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
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


if __name__ == "__main__":
    main()
