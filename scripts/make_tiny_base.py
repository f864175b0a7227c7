"""Pretrain the tiny world's base student (students/tiny-base/): it knows the toy language, never a worked trace.

    python scripts/make_tiny_base.py [--out students/tiny-base] [--n 3000] [--facts 1500] [--seed 2000]

Real students start from pretrained bases that know the language and arithmetic facts but not how
to reason step by step; this is that base at toy scale. Its corpus has two kinds of rows, and no
gold trace: `--n` toy problems answered directly (an empty think block, then `\\boxed{N}`), and
`--facts` rows of one-digit facts ("7+5=12", "4+8+1=13", "13-6=7", "9*3+2=29"). It trains with the
project's trainer (`distill.train.train`) on students/tiny-student.yaml's architecture from random
weights (`model: tiny`), deterministic by seed on one thread, and the model is copied into `--out`.

Measured (2026-11-30, a 2-core CPU, one thread, beside the tiny teacher's rebuild): 282 steps in 42 s. Held-out
check, the same 200 problems (difficulty 1, seed 999) and command for the committed base (64 wide over 2 heads
of 32, so vLLM's CPU attention runs it) and for the head-size-16 base it replaced (`git archive 4e97663^
students/tiny-base`): 1.0 % (2 of 200) and 0.5 % (1 of 200), one sample each at temperature 0.6:

    distill toy problems --n 200 --seed 999 --difficulty 1 --out held.jsonl
    distill eval --model students/tiny-base --bench held.jsonl --k 1 --temperature 0.6 --top-p 0.95 --seed 0 --out base

(`distill eval --teacher tiny --bench held.jsonl --k 1 --seed 0 --out teacher` gives the teacher's 45.5 %.)
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from distill.jsonl import write_jsonl
from distill.sampling import build_prompt, resolve_teacher
from distill.toy.problems import generate

REPO = Path(__file__).resolve().parent.parent
KEEP = ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "chat_template.jinja", "special_tokens_map.json")
FACTS_PROMPT = "Practise one-digit arithmetic."
RESTATE_PROMPT = "Restate the numbers of this problem, in order: "
STEP = re.compile(r"has (\d+)|gets (\d+) more|gives away (\d+)|becomes (\d+) times")


def restate(prompt: str) -> str:
    """The numbers of a toy problem and their operations, in order (reading, not reasoning).

    >>> restate("Ann has 47 apples. Ann gets 85 more apples. Then the number of apples becomes 3 times as many.")
    'Start with 47. Then + 85. Then * 3.'
    """
    parts = []
    for start, plus, minus, times in STEP.findall(prompt):
        parts.append(f"Start with {start}." if start else f"Then {'+' if plus else '-' if minus else '*'} {plus or minus or times}.")
    return " ".join(parts)
PRETRAIN = ["model=tiny", "learning_rate=3.0e-3", "num_train_epochs=1", "save_steps=200",
            "per_device_train_batch_size=16"]


def fact(rng: random.Random) -> str:
    """One arithmetic fact in the forms that column working uses.

    >>> fact(random.Random(0))
    '18-1-0=17'
    """
    kind = rng.choice(["add", "add_carry", "sub", "sub_borrow", "mul", "mul_carry"])
    x, y, carry = rng.randint(0, 9), rng.randint(0, 9), rng.randint(1, 8)
    if kind == "add":
        return f"{x}+{y}={x + y}"
    if kind == "add_carry":
        return f"{x}+{y}+1={x + y + 1}"
    if kind == "sub":
        top = rng.randint(y, 9)
        return f"{top}-{y}={top - y}"
    if kind == "sub_borrow":
        top = rng.randint(10, 18)
        return f"{top}-1-{y}={top - 1 - y}" if top - 1 >= y else f"{top}-{y}={top - y}"
    if kind == "mul":
        return f"{x}*{y}={x * y}"
    return f"{x}*{y}+{carry}={x * y + carry}"


def corpus(n: int, facts: int, seed: int, restated: int = 0) -> Iterator[dict]:
    """Direct-answer problems, fact rows and restated problems, interleaved deterministically."""
    profile = resolve_teacher("tiny")
    rng = random.Random(seed)
    rows = [{"messages": [*build_prompt(problem, profile),
                          {"role": "assistant", "content": f"<think>\n\n</think>\n\nThe answer is \\boxed{{{problem.answer}}}."}],
             "problem_id": problem.id}
            for problem, _ in generate(n, seed=seed, difficulty=(1, 3))]
    rows += [{"messages": [{"role": "user", "content": FACTS_PROMPT},
                           {"role": "assistant", "content": ", ".join(fact(rng) for _ in range(16)) + "."}],
              "problem_id": f"facts-{i}"} for i in range(facts)]
    rows += [{"messages": [{"role": "user", "content": RESTATE_PROMPT + problem.prompt},
                           {"role": "assistant", "content": restate(problem.prompt)}],
              "problem_id": f"restate-{problem.id}"}
             for problem, _ in generate(restated, seed=seed + 1, difficulty=(1, 3))]
    rng.shuffle(rows)
    yield from rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "students" / "tiny-base"))
    parser.add_argument("--recipe", default=str(REPO / "students" / "tiny-student.yaml"))
    parser.add_argument("--n", type=int, default=3000, help="problems answered directly")
    parser.add_argument("--facts", type=int, default=1500, help="rows of 16 one-digit facts")
    parser.add_argument("--restated", type=int, default=0,
                        help="problems whose numbers are restated (tried with 3000: the student did not learn faster)")
    parser.add_argument("--seed", type=int, default=2000)
    parser.add_argument("--work", default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    from distill.train import train

    work = Path(args.work or tempfile.mkdtemp(prefix="tiny-base-"))
    (work / "data").mkdir(parents=True, exist_ok=True)
    write_jsonl(work / "data" / "corpus.jsonl", corpus(args.n, args.facts, args.seed, args.restated))
    start = time.monotonic()
    train(args.recipe, work / "data", work / "model", settings=PRETRAIN)
    logging.info("pretrained in %.0f s (%d threads)", time.monotonic() - start, args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in KEEP:
        if (work / "model" / name).is_file():
            shutil.copy2(work / "model" / name, out / name)


if __name__ == "__main__":
    main()
