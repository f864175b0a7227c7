"""Packed against padded SFT of the tiny student on R1-like long-tailed trace lengths, in one run.

    python benchmarks/train.py                      # default: 200 rows, max length 2048, 1 thread (about 4 minutes)
    python benchmarks/train.py --rows 400 --max-length 2048 --threads 2

The corpus is toy problems whose gold traces are repeated a log-normal number of times (most rows
short, a few near max_length, as R1 traces are). Both runs train the same fresh tiny model
(students/tiny.yaml, seed fixed) for one epoch over the same rows, so they see the same tokens:
- padded: TRL's default batches, `batch` rows padded to the longest in the batch;
- packed: the same rows packed by TRL's best-fit-decreasing packer into rows of max_length with
  per-sample position ids (distill's packed-rows collator), with as many packed rows per batch as
  gives both runs the same number of optimiser steps.
Printed: trained tokens/s of each (tokens in the corpus, padding excluded, over the trainer's runtime),
the ratio (target >= 1.5x), and each model's loss on the same held-out rows afterwards (target: within
1 % of each other).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from pathlib import Path


def write_corpus(directory: Path, rows: int, max_length: int, seed: int, sigma: float) -> None:
    """DIR/corpus.jsonl with long-tailed lengths: each gold trace repeated lognormal-many times."""
    from distill.text import MATH_PROMPT_SUFFIX
    from distill.toy.problems import generate

    rng = random.Random(seed)
    budget_chars = max_length * 2  # toy tokens average a little over 2 characters
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for problem, gold in generate(rows, seed=seed, difficulty=(1, 3)):
            reasoning, _, answer = gold.removeprefix("<think>\n").partition("\n</think>\n\n")
            repeats = max(1, min(int(rng.lognormvariate(0.0, sigma)), budget_chars // max(len(reasoning), 1) - 1))
            think = "\n".join([reasoning] * repeats)
            content = f"<think>\n{think}\n</think>\n\n{answer}"
            messages = [{"role": "user", "content": f"{problem.prompt}\n{MATH_PROMPT_SUFFIX}"},
                        {"role": "assistant", "content": content}]
            handle.write(json.dumps({"messages": messages, "problem_id": problem.id, "source": "toy",
                                     "teacher": "toy-gold"}) + "\n")


def heldout_loss(model_dir: Path, corpus: Path, max_length: int) -> float:
    """Mean token loss of a trained model on held-out rows (one row at a time, no padding)."""
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from distill.train.data import build_dataset, read_corpus

    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    dataset, _ = build_dataset(read_corpus(corpus), tokenizer, max_length, "drop")
    total, count = 0.0, 0
    with torch.no_grad():
        for row in dataset:
            ids, labels = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
            n = int((labels[:, 1:] != -100).sum())
            total += model(input_ids=ids, labels=labels).loss.item() * n
            count += n
    return total / count


def same_steps(rows: int, packs: int, wanted: int) -> tuple[int, int, int]:
    """Padded and packed batch sizes that give both runs the same number of steps per epoch (and so the
    same tokens per step on average), with the padded batch as close to `wanted` as possible."""
    best = None
    for packed_batch in range(1, packs + 1):
        steps = math.ceil(packs / packed_batch)
        for batch in range(1, rows + 1):
            if math.ceil(rows / batch) == steps and (best is None or abs(batch - wanted) < abs(best[0] - wanted)):
                best = (batch, packed_batch, steps)
    assert best is not None
    return best


def run(args: argparse.Namespace) -> dict:
    """Train padded then packed on one corpus; return both runs' numbers."""
    import torch

    from distill.train import train
    from distill.train.data import build_dataset, pack_rows, read_corpus
    from distill.train.recipe import load_student_recipe
    from distill.train.sft import load_tokenizer, materialize_tiny

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    write_corpus(work / "corpus", args.rows, args.max_length, seed=1, sigma=args.sigma)
    write_corpus(work / "heldout", 32, args.max_length, seed=2, sigma=args.sigma)
    common = [f"max_length={args.max_length}", f"tiny.max_positions={max(2048, args.max_length)}",
              "num_train_epochs=1", "save_steps=1000000", "logging_steps=1000000", f"learning_rate={args.lr}",
              "warmup_ratio=0.0", "lr_scheduler_type=constant"]
    recipe = load_student_recipe("tiny", common)
    tokenizer = load_tokenizer(recipe, str(materialize_tiny(recipe, work / "probe")))
    dataset, report = build_dataset(read_corpus(work / "corpus"), tokenizer, args.max_length, "drop")
    lengths = sorted(len(x) for x in dataset["input_ids"])
    packs = len(pack_rows(dataset, args.max_length))
    batch, packed_batch, steps = same_steps(len(dataset), packs, args.batch)
    results = {"rows": len(dataset), "batch": batch, "packed_batch": packed_batch, "tokens": report.total_tokens, "steps": steps, "packed_rows": packs,
               "length_p50": lengths[len(lengths) // 2], "length_p90": lengths[int(len(lengths) * 0.9)],
               "length_max": lengths[-1]}
    for name, extra in (("padded", ["packing=false", f"per_device_train_batch_size={batch}"]),
                        ("packed", ["packing=true", f"per_device_train_batch_size={packed_batch}"])):
        start = time.perf_counter()
        out = Path(train("tiny", work / "corpus", work / name, settings=common + extra)["out_dir"])
        wall = time.perf_counter() - start
        metrics = json.loads((out / "train_metrics.json").read_text())
        results[name] = {
            "train_runtime_s": metrics["train_runtime"], "wall_s": wall, "steps": metrics["global_step"],
            "tokens_per_s": report.total_tokens / metrics["train_runtime"], "train_loss": metrics["train_loss"],
            "heldout_loss": heldout_loss(out, work / "heldout", args.max_length),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=8, help="padded rows per batch")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--sigma", type=float, default=1.4, help="log-normal sigma of the trace repeats (the tail)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    r = run(args)
    print(f"corpus: {r['rows']} rows, {r['tokens']} tokens; length p50 {r['length_p50']}, p90 {r['length_p90']}, "
          f"max {r['length_max']}; {r['packed_rows']} packed rows of <= {args.max_length}; {r['steps']} steps each "
          f"(batches of {r['batch']} padded rows, {r['packed_batch']} packed rows); "
          f"{args.threads} thread(s)")
    for name in ("padded", "packed"):
        x = r[name]
        print(f"{name:7s} {x['tokens_per_s']:9.0f} tokens/s  ({x['train_runtime_s']:.1f} s, {x['steps']} steps)  "
              f"train loss {x['train_loss']:.4f}  held-out loss {x['heldout_loss']:.4f}")
    ratio = r["packed"]["tokens_per_s"] / r["padded"]["tokens_per_s"]
    gap = abs(r["packed"]["heldout_loss"] - r["padded"]["heldout_loss"]) / r["padded"]["heldout_loss"]
    print(f"packed/padded tokens/s: {ratio:.2f}x (target >= 1.5x); held-out loss gap {gap * 100:.2f} % (target <= 1 %)")


if __name__ == "__main__":
    main()
