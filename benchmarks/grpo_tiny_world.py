"""The tiny-world RL measurement: held-out pass@1 of an SFT student before and after a short GRPO run.

    python benchmarks/grpo_tiny_world.py --out runs/rl-tiny [--student CHECKPOINT] [--steps S] [--k 4] [--set grpo.KEY=VALUE]

Without `--student` it first trains one (students/tiny.yaml through distill.train) on gold toy traces
(a stand-in for the pipeline's filtered corpus). GRPO (students/rl/tiny.yaml) uses its own problems
(seed 7); evaluation (distill.evaluate, k samples at R1's temperature 0.6) uses 1,000 held-out ones
(seed 99). Prints and writes OUT/result.json with pass@1 and its standard error before and after, and
the paired change (after - before, per problem) with its standard error. BENCHMARKS.md has the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

import torch

from distill.evaluate import evaluate
from distill.evaluate.metrics import paired_difference
from distill.jsonl import read_jsonl, write_jsonl
from distill.records import to_dict
from distill.reinforce import load_grpo_recipe, reinforce
from distill.text import MATH_PROMPT_SUFFIX
from distill.toy.problems import generate
from distill.train import train

log = logging.getLogger(__name__)


def sft_student(out: Path, n: int, max_steps: int | None, difficulty: tuple[int, int]) -> Path:
    """Train a tiny student on `n` gold toy traces (seed 5) with students/tiny.yaml, unpacked (on CPU a
    padded batch of short traces trains faster per token than a packed one) for two epochs."""
    data = out / "corpus"
    rows = [
        {"messages": [{"role": "user", "content": f"{p.prompt}\n{MATH_PROMPT_SUFFIX}"},
                      {"role": "assistant", "content": gold}], "problem_id": p.id, "source": "toy", "teacher": "gold"}
        for p, gold in generate(n, seed=5, difficulty=difficulty)
    ]
    write_jsonl(data / "corpus.jsonl", rows)
    settings = ["packing=false", "num_train_epochs=2", "per_device_train_batch_size=16", "learning_rate=2e-3"]
    return Path(train("tiny", data, out / "student", max_steps=max_steps, settings=settings)["out_dir"])


def pass_at_1(model: Path, bench: Path, out: Path, k: int, max_new_tokens: int) -> dict:
    """pass@1 (mean over k samples) and its standard error on the held-out problems."""
    summary = evaluate(model=str(model), benches=[str(bench)], k=k, out_dir=out, max_new_tokens=max_new_tokens, seed=0)
    return next(iter(summary["benchmarks"].values())) if "benchmarks" in summary else summary


def per_problem_pass_at_1(bench_dir: Path) -> dict[str, float]:
    """Problem id -> pass@1 from one benchmark's per-problem results (`bench_dir`/problems.jsonl)."""
    return {row["problem_id"]: row["pass@1"] for _, row in read_jsonl(bench_dir / "problems.jsonl")}


def main(argv: list[str] | None = None) -> None:
    """Run the measurement; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--student", help="an SFT checkpoint; trained on gold traces when absent")
    parser.add_argument("--sft-examples", type=int, default=3000)
    parser.add_argument("--difficulty", default="1", help="a level 1-5 or a range such as 1-2")
    parser.add_argument("--sft-steps", type=int, default=None)
    parser.add_argument("--rl-problems", type=int, default=3600, help="8 new problems a step for 450 steps")
    parser.add_argument("--steps", type=int, default=None, help="GRPO steps (default: the recipe's max_steps)")
    parser.add_argument("--held-out", type=int, default=1000, help="held-out problems (standard error ~1.4 points)")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--recipe", default="tiny", help="a GRPO recipe: a path, or a shipped name")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        help="override a recipe key, GROUP.KEY=VALUE (repeatable), e.g. grpo.learning_rate=1e-4")
    parser.add_argument("--only-sft", action="store_true", help="stop after training the SFT student")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    low, _, high = args.difficulty.partition("-")
    levels = (int(low), int(high or low))
    student = Path(args.student) if args.student else sft_student(out, args.sft_examples, args.sft_steps, levels)
    if args.only_sft:
        return
    held_out, rl_problems = out / "held_out.jsonl", out / "rl_problems.jsonl"
    write_jsonl(held_out, (to_dict(p) for p, _ in generate(args.held_out, seed=99, difficulty=levels)))
    write_jsonl(rl_problems, (to_dict(p) for p, _ in generate(args.rl_problems, seed=7, difficulty=levels)))
    before = pass_at_1(student, held_out, out / "eval_before", args.k, args.max_new_tokens)
    log.info("before: %s", before)
    recipe = load_grpo_recipe(args.recipe, settings=args.settings)
    rl = Path(reinforce(recipe, out / "rl", model=str(student), problems=str(rl_problems), max_steps=args.steps)["out_dir"])
    after = pass_at_1(rl, held_out, out / "eval_after", args.k, args.max_new_tokens)
    change, change_se = paired_difference(per_problem_pass_at_1(out / "eval_before" / before["dir"]),
                                          per_problem_pass_at_1(out / "eval_after" / after["dir"]))
    result = {"change": change, "change_se": change_se, "student": str(student), "difficulty": args.difficulty,
              "steps": args.steps, "recipe": args.recipe, "settings": args.settings, "grpo": dataclasses.asdict(recipe.grpo),
              "k": args.k, "held_out": args.held_out, "before": before, "after": after}
    (out / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    log.info("after: %s", after)
    print(json.dumps({"before": before, "after": after, "change": change, "change_se": change_se}, indent=2))  # noqa: T201  (a script's result)


if __name__ == "__main__":
    main()
