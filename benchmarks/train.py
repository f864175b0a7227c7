"""Packed against padded SFT, with two padded baselines, on two corpora, in one run.

    python benchmarks/train.py                              # both corpora, 1 thread, one run of each arm
    python benchmarks/train.py --repeats 3                  # BENCHMARKS.md (about 10 minutes on 2 busy cores)
    python benchmarks/train.py --only real --real-problems 1500 --repeats 3    # the quickstart's 3,000 samples
    python benchmarks/train.py --only real --corpus runs/quickstart/corpus-unfiltered
    python benchmarks/train.py --only synthetic --rows 400 --threads 2

Three arms train the same starting weights of one student (seed fixed) for one epoch over the same rows, so
they see the same tokens:
- padded, random order: TRL's default, `batch` rows padded to the longest in each batch;
- padded, grouped by length: the same with transformers' `train_sampling_strategy=group_by_length`
  (rows of similar length batched together, the best plain way to cut padding);
- packed: the rows packed by TRL's best-fit-decreasing packer into rows of max_length with per-sample
  position ids (distill's packed-rows collator), with as many packed rows per batch as gives the
  same number of optimiser steps, within 4 % (a packed row holds several samples, so its batch size is
  coarse; the padded batch is the one nearest `--batch` that allows a match).
Printed for each corpus: trained tokens/s of each arm (tokens of the rows, padding excluded, over the
trainer's runtime), packed/padded ratios against each padded baseline, and each arm's loss on the same
held-out rows afterwards, as a gap against each baseline.

The corpora:
- synthetic: R1-like long-tailed lengths drawn honestly. Each row is a distinct toy problem (a chain of
  arithmetic steps, worked column by column as the tiny world's gold traces are) whose length in tokens
  follows a log-normal distribution (median `--median-tokens`, `--sigma`), draws above max_length
  redrawn; nothing is repeated to lengthen a trace. Student: students/tiny.yaml (a fresh tiny model)
  with max_length 2048 (`--max-length`), padded batches of 8 rows (`--batch`).
- real: the project's own quickstart traces, short and of similar length. `--corpus DIR` reads a
  quickstart run's DIR/corpus.jsonl (`distill run quickstart` writes RUN/corpus-unfiltered/); without
  it, the script samples the tiny teacher on the first `--real-problems` training problems of the
  quickstart recipe with its sampling settings, and keeps every sample (all filters off, as the
  quickstart's unfiltered corpus). Student: students/tiny-student.yaml (the quickstart's student),
  with its max_length and batch size. Rows of a seeded tenth of the problems are held out.
Every arm runs in this process, one after another. `--repeats R` trains the three arms R times, each
repeat with the next trainer seed (a new data order; the starting weights stay the same) and the arms'
order rotated, since a shared machine's load drifts; it prints the median ratio and every run's, and
the spread of the random arm's held-out loss over seeds, the yardstick for the loss gaps. The thread
count and the load average are printed.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ARMS = ("random", "grouped", "packed")
LABELS = {"random": "padded, random order", "grouped": "padded, grouped by length", "packed": "packed"}
NAMES = ("Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo")


def render(name: str, start: int, steps: list[Any]) -> list[dict[str, str]]:
    """The chat of one chained problem: the prompt lists the steps, the trace works each one column by
    column (the tiny world's gold format) and ends with the boxed answer."""
    from distill.text import MATH_PROMPT_SUFFIX
    from distill.toy.problems import gold_trace

    words = {"+": "add", "-": "subtract", "*": "multiply by"}
    prompt = f"{name} starts at {start}, then: " + ", ".join(f"{words[s.op]} {s.operand}" for s in steps)
    reasoning, answer = gold_trace(start, steps)
    return [{"role": "user", "content": f"{prompt}. What is the result?\n{MATH_PROMPT_SUFFIX}"},
            {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{answer}"}]


def long_problem(rng: random.Random, tokenizer: Any, target: int) -> list[dict[str, str]]:
    """A distinct toy problem whose chat, as the student's template renders it, is the first to reach
    `target` tokens as steps are added (a random start, then random add/subtract/multiply steps)."""
    from distill.toy.problems import Step, apply
    from distill.train.data import tokenize_row

    name = rng.choice(NAMES)
    start = rng.randint(10, 999)
    steps: list[Step] = []
    while True:
        value = apply(start, steps)
        op = rng.choice("+-*") if value < 10**4 else rng.choice("+-")
        if op == "*":
            steps.append(Step("*", rng.randint(2, 9)))
        elif op == "-" and value > 1:
            steps.append(Step("-", rng.randint(1, min(value - 1, 999))))
        else:
            steps.append(Step("+", rng.randint(1, 999)))
        messages = render(name, start, steps)
        if len(tokenize_row(tokenizer, messages)[0]) >= target:
            return messages


def synthetic_rows(n: int, seed: int, tokenizer: Any, max_length: int, median: int, sigma: float) -> list[dict]:
    """`n` corpus rows of distinct long problems with log-normal lengths (median `median` tokens);
    a draw above 95 % of max_length is redrawn, so the tail is cut at max_length, not piled onto it."""
    rng = random.Random(seed)
    rows, prompts = [], set()
    while len(rows) < n:
        target = rng.lognormvariate(math.log(median), sigma)
        if target > 0.95 * max_length:
            continue
        messages = long_problem(rng, tokenizer, int(target))
        if messages[0]["content"] in prompts:
            continue
        prompts.add(messages[0]["content"])
        rows.append({"messages": messages, "problem_id": f"long-{seed}-{len(rows)}", "source": "toy",
                     "teacher": "toy-gold"})
    return rows


def sample_quickstart_corpus(work: Path, problems: int) -> Path:
    """Sample the quickstart's teacher on its first `problems` training problems (the quickstart's full
    corpus with 1,500) with the quickstart's sampling settings, and keep every sample (all filters off); returns the corpus directory. Resumes
    a sampling run left in WORK by an earlier call."""
    from distill.filters import filter_run
    from distill.jsonl import write_jsonl
    from distill.pipeline import build_problems, load_recipe, unfiltered_config
    from distill.sampling import generate_run, resolve_teacher

    recipe = load_recipe("quickstart")
    heldout = {p.prompt for p in build_problems(recipe.heldout, recipe)}  # the pipeline drops these, too
    chosen = [p for p in build_problems(recipe.train_problems, recipe) if p.prompt not in heldout][:problems]
    problems_file = work / "problems.jsonl"
    write_jsonl(problems_file, chosen)
    profile = resolve_teacher(recipe.sample.teacher)
    config = profile.sampling.replace(n=recipe.sample.n, max_new_tokens=recipe.sample.max_new_tokens,
                                      temperature=recipe.sample.temperature, top_p=recipe.sample.top_p,
                                      seed=recipe.sample.seed)
    start = time.perf_counter()
    summary = generate_run(chosen, profile, config, work / "samples", problems_source=str(problems_file),
                           progress=False)
    if not summary["ok"]:
        raise SystemExit(f"sampling the tiny teacher stopped with samples missing: {summary}")
    filter_run(work / "samples", work / "corpus", config=unfiltered_config())
    logging.getLogger(__name__).warning("sampled %d problems x %d in %.0f s", len(chosen), config.n,
                                        time.perf_counter() - start)
    return work / "corpus"


def split_by_problem(rows: list[dict], share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows): the rows of a seeded `share` of the problems are held out."""
    ids = sorted({str(r.get("problem_id")) for r in rows})
    held = set(random.Random(seed).sample(ids, max(1, round(len(ids) * share))))
    kept = [r for r in rows if str(r.get("problem_id")) not in held]
    return kept, [r for r in rows if str(r.get("problem_id")) in held]


def heldout_loss(model_dir: Path, rows: list[dict], max_length: int) -> float:
    """Mean token loss of a trained model on held-out rows (one row at a time, no padding)."""
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from distill.train.data import build_dataset

    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    dataset, _ = build_dataset(rows, tokenizer, max_length, "drop")
    total, count = 0.0, 0
    with torch.no_grad():
        for row in dataset:
            ids, labels = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
            n = int((labels[:, 1:] != -100).sum())
            total += model(input_ids=ids, labels=labels).loss.item() * n
            count += n
    return total / count


def match_steps(rows: int, packs: int, wanted: int, tolerance: float = 0.04) -> tuple[int, int]:
    """(padded batch, packed batch): the padded batch nearest `wanted` for which some packed batch gives a
    step count per epoch within `tolerance` of the padded one (and so about the same tokens per step);
    among those, the closest step counts. A packed row holds several samples, so its batch is coarse:
    equal steps can need a padded batch far from `wanted` (2,700 quickstart rows in 1,298 packed rows: 17
    rather than 4), and padding grows with the batch; a few percent more or fewer optimiser steps moves
    tokens/s far less than that."""
    best: tuple[int, float, int, int, int] | None = None
    for batch in range(1, rows + 1):
        steps = math.ceil(rows / batch)
        packed_batch = min(range(1, packs + 1), key=lambda p: abs(math.ceil(packs / p) - steps))
        mismatch = abs(math.ceil(packs / packed_batch) - steps) / steps
        if mismatch <= tolerance:
            key = (abs(batch - wanted), mismatch, batch, batch, packed_batch)
            best = key if best is None or key[:3] < best[:3] else best
    if best is None:
        raise SystemExit(f"no batch sizes give {rows} padded and {packs} packed rows the same steps; change --batch")
    return best[3], best[4]


def has_twins(ids: list[int], lengths: list[int]) -> bool:
    """Whether a packed row holds the same sample twice (two identical traces of one problem)."""
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    samples = [tuple(ids[s:s + n]) for s, n in zip(starts, lengths, strict=True)]
    return len(set(samples)) < len(samples)


def bench(name: str, student: str, extra: list[str], train_rows: list[dict], heldout: list[dict], work: Path,
          batch: int | None, repeats: int) -> dict[str, Any]:
    """Train the three arms of `student` (with `extra` settings) on `train_rows` (`repeats` times, order
    rotated); return every run's figures."""
    from distill.jsonl import write_jsonl
    from distill.train import train
    from distill.train.data import build_dataset, pack_rows
    from distill.train.recipe import load_student_recipe
    from distill.train.sft import base_path, load_tokenizer

    common = [*extra, "num_train_epochs=1", "save_steps=1000000", "logging_steps=1000000", "warmup_ratio=0.0",
              "lr_scheduler_type=constant", "train_sampling_strategy=random"]
    recipe = load_student_recipe(student, common)
    tokenizer = load_tokenizer(recipe, base_path(recipe, work / "probe"))
    dataset, report = build_dataset(train_rows, tokenizer, recipe.max_length, recipe.overlong)
    lengths = sorted(len(x) for x in dataset["input_ids"])
    packed = pack_rows(dataset, recipe.max_length)
    packs = len(packed)
    padded_batch, packed_batch = match_steps(len(dataset), packs, batch or recipe.per_device_train_batch_size)
    write_jsonl(work / "corpus" / "corpus.jsonl", train_rows)
    settings = {
        "random": ["packing=false", f"per_device_train_batch_size={padded_batch}"],
        "grouped": ["packing=false", "train_sampling_strategy=group_by_length",
                    f"per_device_train_batch_size={padded_batch}"],
        "packed": ["packing=true", f"per_device_train_batch_size={packed_batch}"],
    }
    out: dict[str, Any] = {
        "name": name, "student": student, "max_length": recipe.max_length, "rows": len(dataset),
        "overlong": report.overlong, "tokens": report.total_tokens, "heldout_rows": len(heldout),
        "padded_batch": padded_batch, "packed_batch": packed_batch, "packed_rows": packs,
        "packs_with_twins": sum(has_twins(row["input_ids"], row["seq_lengths"]) for row in packed),
        "length_p50": lengths[len(lengths) // 2], "length_p90": lengths[int(len(lengths) * 0.9)],
        "length_max": lengths[-1], "runs": [],
    }
    for r in range(repeats):
        order = ARMS[r % 3:] + ARMS[: r % 3]
        run: dict[str, Any] = {"order": order, "seed": recipe.seed + r}
        for arm in order:
            # A fresh folder each time: train() resumes from a checkpoint in a folder it finds one in.
            out_dir = tempfile.mkdtemp(prefix=f"{arm}-{r}-", dir=work)
            result = train(student, work / "corpus", out_dir,
                           settings=[*common, *settings[arm], f"seed={recipe.seed + r}"])
            runtime = result["train_runtime"]
            run[arm] = {"runtime_s": runtime, "tokens_per_s": report.total_tokens / runtime,
                        "steps": result["global_step"], "train_loss": result["train_loss"],
                        "heldout_loss": heldout_loss(Path(result["out_dir"]), heldout, recipe.max_length)}
        out["runs"].append(run)
    return out


def print_result(r: dict[str, Any], threads: int) -> None:
    """The corpus, each arm's figures per repeat, and the ratios against each padded baseline."""
    print(f"\n== {r['name']} corpus: {r['rows']} training rows ({r['overlong']} over max_length dropped), "
          f"{r['tokens']} tokens; length p50 {r['length_p50']}, p90 {r['length_p90']}, max {r['length_max']}; "
          f"{r['packed_rows']} packed rows of <= {r['max_length']} ({r['packs_with_twins']} holding one sample "
          f"twice); batches of {r['padded_batch']} padded rows, "
          f"{r['packed_batch']} packed rows; student {r['student']}; "
          f"{r['heldout_rows']} held-out rows; {threads} thread(s)")
    for i, run in enumerate(r["runs"]):
        print(f"-- repeat {i + 1} (trainer seed {run['seed']}; order: {', '.join(run['order'])})")
        for arm in ARMS:
            x = run[arm]
            print(f"   {LABELS[arm]:26s} {x['tokens_per_s']:8.0f} tokens/s ({x['runtime_s']:6.1f} s, "
                  f"{x['steps']} steps)  train loss {x['train_loss']:.4f}  held-out loss {x['heldout_loss']:.4f}")
    for a, b in (("packed", "random"), ("packed", "grouped"), ("grouped", "random")):
        ratios = [run[a]["tokens_per_s"] / run[b]["tokens_per_s"] for run in r["runs"]]
        gaps = [100 * (run[a]["heldout_loss"] / run[b]["heldout_loss"] - 1) for run in r["runs"]]
        print(f"{r['name']}: {a}/{'padded-' + b} tokens/s {statistics.median(ratios):.2f}x "
              f"(runs: {', '.join(f'{x:.2f}' for x in ratios)}); held-out loss {a} vs {b} "
              f"{statistics.median(gaps):+.2f} % (runs: {', '.join(f'{x:+.2f}' for x in gaps)})")
    if len(r["runs"]) > 1:
        losses = [run["random"]["heldout_loss"] for run in r["runs"]]
        print(f"{r['name']}: padded-random held-out loss over {len(losses)} seeds: {min(losses):.4f} to "
              f"{max(losses):.4f} ({100 * (max(losses) / min(losses) - 1):.2f} % apart)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["synthetic", "real"], help="one corpus (default: both)")
    parser.add_argument("--rows", type=int, default=200, help="synthetic: training rows")
    parser.add_argument("--median-tokens", type=int, default=250, help="synthetic: median row length in tokens")
    parser.add_argument("--sigma", type=float, default=1.0, help="synthetic: log-normal sigma of the lengths (the tail)")
    parser.add_argument("--max-length", type=int, default=2048, help="synthetic: the student's max_length")
    parser.add_argument("--corpus", type=Path, help="real: a quickstart run's corpus directory (or corpus.jsonl)")
    parser.add_argument("--real-problems", type=int, default=300, help="real, without --corpus: problems to sample")
    parser.add_argument("--batch", type=int, help="padded rows per batch (default: synthetic 8, real the student "
                        "recipe's)")
    parser.add_argument("--repeats", type=int, default=1, help="train the three arms this many times (next seed, order rotated)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, help="keep the work here (a sampled real corpus is reused)")
    args = parser.parse_args()
    if min(args.rows, args.repeats, args.threads, args.real_problems, args.batch or 1) < 1:
        parser.error("--rows, --repeats, --threads, --real-problems and --batch must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    from distill.errors import DistillError

    try:
        run(args)
    except DistillError as error:  # a bad corpus or setting: one line, as the CLI prints it
        raise SystemExit(f"error: {error}") from None


def run(args: argparse.Namespace) -> None:
    """Benchmark the corpora `args` asks for, printing each one's figures as soon as they are measured."""
    import torch

    from distill.train.data import read_corpus
    from distill.train.recipe import load_student_recipe
    from distill.train.sft import base_path, load_tokenizer

    torch.set_num_threads(args.threads)
    given = read_corpus(args.corpus) if args.corpus and args.only != "synthetic" else None  # fail before training
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"threads: {args.threads}; load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs; work in {work}", flush=True)
    if args.only in (None, "synthetic"):
        extra = [f"max_length={args.max_length}", f"tiny.max_positions={max(2048, args.max_length)}"]
        recipe = load_student_recipe("tiny", extra)
        tokenizer = load_tokenizer(recipe, base_path(recipe, work / "synthetic" / "probe"))
        rows = synthetic_rows(args.rows, 1, tokenizer, recipe.max_length, args.median_tokens, args.sigma)
        heldout = synthetic_rows(32, 2, tokenizer, recipe.max_length, args.median_tokens, args.sigma)
        print_result(bench("synthetic", "tiny", extra, rows, heldout, work / "synthetic", args.batch or 8,
                           args.repeats), args.threads)
    if args.only in (None, "real"):
        if given is None:
            given = read_corpus(sample_quickstart_corpus(work / "real-sampled", args.real_problems))
        rows, heldout = split_by_problem(given, 0.1, seed=0)
        print_result(bench("real", "tiny-student", [], rows, heldout, work / "real", args.batch, args.repeats),
                     args.threads)
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
