"""Train the tiny world's bundled teacher (teachers/tiny/) from gold R1-format traces.

    python scripts/make_tiny_teacher.py [--out teachers/tiny] [--eval-n 300]

The corpus is toy problems (difficulty 1) with their gold traces, prompted exactly as the sampling
engine prompts the teacher (teachers/tiny.yaml); training is the project's own `distill.train.train`
with students/tiny-teacher.yaml, in the cycles of CYCLES below (deterministic by seed on one thread).
The final model, tokenizer, chat template and generation config are copied into `--out` (checkpoints
and logs stay in the work directory), then the teacher is evaluated on `--eval-n` held-out problems
with R1 sampling (temperature 0.6, top-p 0.95), one sample each.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import torch

from distill.jsonl import write_jsonl
from distill.sampling import build_prompt, resolve_teacher
from distill.toy.problems import generate

REPO = Path(__file__).resolve().parent.parent
KEEP = ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "chat_template.jinja", "special_tokens_map.json")
HELDOUT_SEED = 999  # the quickstart's held-out seed is different again (recipes/quickstart.yaml)


def write_corpus(path: Path, n: int, seed: int, difficulty: tuple[int, int]) -> None:
    """Gold traces as a TRL conversational corpus, prompted as the teacher will be prompted."""
    profile = resolve_teacher("tiny")
    rows = ({"messages": [*build_prompt(problem, profile), {"role": "assistant", "content": gold}],
             "problem_id": problem.id}
            for problem, gold in generate(n, seed=seed, difficulty=difficulty))
    write_jsonl(path / "corpus.jsonl", rows)


def copy_model(work: Path, out: Path) -> None:
    """The files `from_pretrained(out)` needs, and nothing else (the checkpoint is committed)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in KEEP:
        if (work / name).is_file():
            shutil.copy2(work / name, out / name)


def evaluate_teacher(out: Path, n: int, difficulty: tuple[int, int]) -> dict:
    """pass@1 of the teacher on `n` held-out toy problems with R1 sampling, per difficulty too."""
    from distill.sampling import build_teacher
    from distill.verify import verify_sample

    profile = resolve_teacher("tiny", model=str(out))
    problems = [p for p, _ in generate(n, seed=HELDOUT_SEED, difficulty=difficulty)]
    samples = build_teacher(profile).generate(problems, profile.sampling.replace(n=1, seed=0))
    by_difficulty: dict[int, list[bool]] = {}
    for problem, sample in zip(problems, samples, strict=True):
        correct = verify_sample(problem, sample).correct is True
        by_difficulty.setdefault(problem.meta["difficulty"], []).append(correct)
    flat = [c for v in by_difficulty.values() for c in v]
    return {"pass@1": sum(flat) / len(flat), "n": len(flat),
            **{f"difficulty {d}": round(sum(v) / len(v), 3) for d, v in sorted(by_difficulty.items())}}


# Four cosine cycles, each on fresh problems and starting from the previous cycle's weights
# (problems, their seed, peak learning rate, warm-up ratio): the first learns the format and to copy
# the numbers, the next two the column arithmetic. One cycle of the same total length learnt less in
# the same time on this machine.
CYCLES = ((5000, 1000, 3.0e-3, 0.05), (2400, 1001, 2.0e-3, 0.02), (4800, 1002, 2.0e-3, 0.02),
          (2400, 1003, 1.0e-3, 0.02))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "teachers" / "tiny"))
    parser.add_argument("--recipe", default=str(REPO / "students" / "tiny-teacher.yaml"))
    parser.add_argument("--cycles", type=int, default=len(CYCLES), help="how many of the training cycles to run")
    parser.add_argument("--start-cycle", type=int, default=0, help="skip the cycles before this one ...")
    parser.add_argument("--init", default=None, help="... and start from this checkpoint (the previous cycle's)")
    parser.add_argument("--difficulty", type=int, nargs=2, default=(1, 1))
    parser.add_argument("--work", default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--eval-n", type=int, default=300, help="held-out problems to measure (0: skip)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    from distill.train import train

    work = Path(args.work or tempfile.mkdtemp(prefix="tiny-teacher-"))
    difficulty = (args.difficulty[0], args.difficulty[1])
    start = time.monotonic()
    # The first cycle starts from a fresh model built from the recipe's `tiny:` sizes.
    model: str = args.init or "tiny"
    for cycle, (n, seed, learning_rate, warmup) in enumerate(CYCLES[: args.cycles]):
        if cycle < args.start_cycle:
            continue
        data = work / f"data-{cycle}"
        data.mkdir(parents=True, exist_ok=True)
        write_corpus(data, n, seed, difficulty)
        out = train(args.recipe, data, work / f"model-{cycle}",
                    settings=[f"model={model}", f"learning_rate={learning_rate}", f"warmup_ratio={warmup}"])["out_dir"]
        model = str(out)
        logging.info("cycle %d done after %.0f s (%d threads)", cycle, time.monotonic() - start, args.threads)
    copy_model(Path(model), Path(args.out))
    if args.eval_n:
        logging.info("held-out accuracy: %s", evaluate_teacher(Path(args.out), args.eval_n, difficulty))


if __name__ == "__main__":
    main()
