"""The tiny-world comparison of distillation methods from one fixed SFT student, with the same budget each.

    python benchmarks/distill_methods.py --out runs/distill-methods --jobs 2          # the full run (46 min on a quiet 2-core CPU)
    python benchmarks/distill_methods.py --out /tmp/dm --quick                        # a check of the script (minutes)

Stages, each kept in OUT and skipped when done, so the same command resumes after a kill (a method's
training also resumes from its last checkpoint):
1. problems: train problems (toy, seed 7) and held-out ones (seed 99), difficulty 1;
2. teacher: the tiny teacher samples the train problems once each with its top-20 logprobs (`--logprobs 20`),
   verified and filtered into a corpus whose rows carry the teacher's token ids and record references; the
   sidecar's size per 1,000 generated tokens is measured here;
3. start: the fixed SFT student, students/tiny-student.yaml (from students/tiny-base/) trained on the first
   half of the corpus with the quickstart's step budget (or `--start CKPT`, e.g. the quickstart's filtered
   student); evaluated once;
4. for each seed and method, from the start, STEPS optimiser steps of ROWS sequences each:
   - sft: more SFT on the teacher's traces (the whole corpus);
   - kd: offline KD on the same rows (`objective: kd`, forward KL over the top 20 and the rest);
   - opd: on-policy distillation (`distill opd`, students/opd/tiny.yaml: TRL's reverse KL to the tiny teacher)
     on ROWS prompts per step, one completion each;
   - grpo: GRPO with students/rl/tiny.yaml (8 prompts x 16 completions = 128 per step) on the same problems;
   then held-out pass@1 (k samples at temperature 0.6, one sampling seed for every model, so evaluations pair).
The budget is the same number of optimiser steps over the same number of sequences per step (ROWS = 128, the
GRPO recipe's); the table reports the tokens each method actually trained on, the rollout tokens it
sampled and its wall time beside pass@1. Changes are paired per problem against the start (± their standard
error), and on-policy distillation is paired against GRPO seed by seed.

OUT/results/METHOD-seedS.json holds each run; OUT/table.md and OUT/result.json the table of every finished
run. A result recorded with other settings than the command's is refused (use another --out, or a --tag).
`--set METHOD:KEY=VALUE` changes a method's recipe (e.g. `--set opd:opd.learning_rate=1e-4`); with
`--tag NAME` such a variant runs beside the main runs, sharing the teacher's corpus and the start. `--start-set
KEY=VALUE` changes the start's recipe (in its own OUT). BENCHMARKS.md has every run made with this script.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import logging
import multiprocessing
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from distill.atomic import atomic_write_json, atomic_write_text
from distill.evaluate import evaluate
from distill.evaluate.metrics import mean_and_se, paired_difference
from distill.filters import filter_run, load_filter_config
from distill.jsonl import read_jsonl, write_jsonl
from distill.logprobs import encode
from distill.opd import opd
from distill.records import to_dict
from distill.reinforce import reinforce
from distill.sampling import generate_run, resolve_teacher
from distill.toy.problems import generate
from distill.train import train
from distill.verify_run import verify_run

log = logging.getLogger("distill_methods")
METHODS = ("sft", "kd", "opd", "grpo")
# The order runs are handed to the workers: longest first (on 2026-12-01's quiet 2-core CPU a run of on-policy
# distillation trained for about 11 minutes of one core, GRPO 8.6, SFT 3.9, KD 3.5), so parallel jobs end close
# together and a run cut short has the on-policy pair (the target) of every seed first.
LONGEST_FIRST = ("opd", "grpo", "sft", "kd")
# What the start depends on (a start.json written before `config` was recorded is taken as it is).
START_KEYS = ("start", "start_steps", "start_batch", "start_set")
# SFT and KD continue the start's recipe with a batch of ROWS rows at a constant rate (not tuned: see BENCHMARKS.md).
SFT_SETTINGS = ["lr_scheduler_type=constant", "warmup_ratio=0.0", "learning_rate=5e-4", "num_train_epochs=1000",
                "logging_steps=10", "save_steps=50", "save_total_limit=1"]
KD_SETTINGS = ["objective=kd", "kd.loss=forward_kl", "kd.top_k=20"]


def done(path: Path) -> dict[str, Any] | None:
    """A finished stage's record, or None."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def stage_problems(out: Path, args: argparse.Namespace) -> dict[str, str]:
    """The train and held-out problem files."""
    train_file, held_out = out / "train_problems.jsonl", out / "held_out.jsonl"
    if not held_out.is_file():
        write_jsonl(train_file, (to_dict(p) for p, _ in generate(args.train_problems, seed=7, difficulty=(1, 1))))
        write_jsonl(held_out, (to_dict(p) for p, _ in generate(args.held_out, seed=99, difficulty=(1, 1))))
    return {"train": str(train_file), "held_out": str(held_out)}


def stage_teacher(out: Path, args: argparse.Namespace, problems: dict[str, str]) -> dict[str, Any]:
    """The teacher's run with top-20 logprobs, its KD corpus, and the sidecar's measured size."""
    record = out / "teacher.json"
    if (found := done(record)) is not None:
        return found
    started = time.time()
    profile = resolve_teacher("tiny", settings=[f"local.batch_size={args.batch_size}"])
    config = profile.sampling.replace(n=1, max_new_tokens=args.max_new_tokens, seed=0, logprobs=20)
    from distill.problems import load_problems

    summary = generate_run(load_problems(problems["train"]), profile, config, out / "teacher_run",
                           problems_source=problems["train"], progress=False)
    verify_run(out / "teacher_run")
    funnel = filter_run(out / "teacher_run", out / "corpus", config=load_filter_config(None, ["decontamination.enabled=false"]))
    side = sum(p.stat().st_size for p in (out / "teacher_run" / "samples").glob("*.logprobs"))
    tokens, prompts = summary["completion_tokens"], summary["prompt_tokens"]
    # A 32,768-token trace at K = 20 (its prompt not counted): the bytes of one record, measured by encoding it.
    trace = len(encode([0] * 32768, [0.0] * 32768, [[0] * 20] * 32768, [[0.0] * 20] * 32768))
    result = {
        "samples": summary["samples"], "completion_tokens": tokens, "prompt_tokens": prompts,
        "corpus_rows": funnel["remaining"], "sidecar_bytes": side,
        "bytes_per_1000_tokens": round(1000 * side / tokens, 1),
        "bytes_per_1000_tokens_without_prompts": round(1000 * (side - 4 * prompts - 16 * summary["samples"]) / tokens, 1),
        "bytes_per_32k_trace": trace, "wall_s": round(time.time() - started, 1),
    }
    atomic_write_json(record, result)
    return result


def split_corpus(out: Path) -> Path:
    """OUT/corpus_a: the first half of the corpus rows (the start's data), with the run's local.json."""
    folder = out / "corpus_a"
    if not (folder / "corpus.jsonl").is_file():
        rows = [row for _, row in read_jsonl(out / "corpus" / "corpus.jsonl")]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "corpus" / "local.json", folder / "local.json")
        write_jsonl(folder / "corpus.jsonl", rows[: len(rows) // 2])
    return folder


def pass_at_1(model: Path, held_out: str, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Held-out pass@1 of a model and its per-problem values."""
    profile = resolve_teacher(model=str(model), backend="transformers", settings=[f"local.batch_size={args.batch_size}"])
    summary = evaluate(profile=profile, benches=[held_out], k=args.k, out_dir=out, max_new_tokens=args.max_new_tokens,
                       seed=0, label=model.name)
    bench = next(iter(summary["benchmarks"].values()))
    per_problem = {row["problem_id"]: row["pass@1"] for _, row in read_jsonl(out / bench["dir"] / "problems.jsonl")}
    return {"pass@1": bench["pass@1"], "pass@1_se": bench["pass@1_se"], "per_problem": per_problem}


def stage_start(out: Path, args: argparse.Namespace, problems: dict[str, str]) -> dict[str, Any]:
    """The fixed SFT student and its held-out pass@1."""
    record = out / "start.json"
    config = {key: getattr(args, key) for key in START_KEYS}
    if (found := done(record)) is not None:
        # A start made with other settings would silently stand under this command's results: refuse it.
        if found.get("config", config) != config:
            raise SystemExit(f"{record}: the start was made with {found['config']}, not {config}; use another --out")
        return found
    started = time.time()
    if args.start:
        model, steps = Path(args.start).resolve(), None
    else:
        data = split_corpus(out)
        settings = [f"per_device_train_batch_size={args.start_batch}", "logging_steps=50", "save_steps=500", "seed=0",
                    *args.start_set]
        summary = train("tiny-student", data, out / "start", max_steps=args.start_steps, settings=settings)
        model, steps = Path(summary["out_dir"]), summary["global_step"]
    wall = time.time() - started
    result = {"model": str(model), "steps": steps, "train_wall_s": round(wall, 1), "config": config,
              **pass_at_1(model, problems["held_out"], out / "start_eval", args)}
    atomic_write_json(record, result)
    return result


def stage_teacher_eval(out: Path, args: argparse.Namespace, problems: dict[str, str]) -> dict[str, Any]:
    """The tiny teacher's held-out pass@1 under the same protocol: the ceiling the students are distilled toward."""
    record = out / "teacher_eval.json"
    if (found := done(record)) is None:
        found = pass_at_1(Path(resolve_teacher("tiny").engine_model()), problems["held_out"], out / "teacher_eval", args)
        atomic_write_json(record, found)
    return found


def settings_for(method: str, args: argparse.Namespace) -> list[str]:
    """The user's `--set METHOD:KEY=VALUE` settings for one method."""
    out = []
    for item in args.set:
        name, sep, setting = item.partition(":")
        if not sep or name not in METHODS:
            raise SystemExit(f"--set {item}: expected METHOD:KEY=VALUE with METHOD one of {', '.join(METHODS)}")
        if name == method:
            out.append(setting)
    return out


def run_one(method: str, seed: int, out_text: str, args_dict: dict[str, Any], problems: dict[str, str],
            start: str) -> dict[str, Any]:
    """Train one method from the start and evaluate it (in a worker process: one thread)."""
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("%s seed %d: training from %s", method, seed, start)
    args = argparse.Namespace(**args_dict)
    out = Path(out_text)
    folder = out / "runs" / run_name(method, seed, args.tag)
    rows = args.rows_per_step
    extra = settings_for(method, args)
    started = time.time()
    if method in ("sft", "kd"):
        settings = [f"model={start}", f"per_device_train_batch_size={rows}", f"seed={seed}", *SFT_SETTINGS,
                    *(KD_SETTINGS if method == "kd" else []), *extra]
        summary = train("tiny-student", out / "corpus", folder, max_steps=args.steps, settings=settings)
        report = json.loads((folder / "data_report.json").read_text())
        trained = round(summary["global_step"] * rows * report["label_tokens"] / max(report["kept"], 1))
        rollout, steps = 0, summary["global_step"]
    elif method == "opd":
        settings = [f"opd.per_device_train_batch_size={rows}", f"opd.seed={seed}",
                    f"opd.max_completion_length={args.max_completion_length}", *extra]
        summary = opd("tiny", folder, student=start, teacher="tiny", problems=problems["train"], max_steps=args.steps,
                      settings=settings)
        metrics = [r for _, r in read_jsonl(folder / "metrics.jsonl") if "rollout_tokens" in r]
        rollout = trained = round(sum(r["rollout_tokens"] for r in metrics))
        steps = summary["steps"]
    else:
        settings = [f"grpo.per_device_train_batch_size={rows}", f"grpo.seed={seed}",
                    f"grpo.max_completion_length={args.max_completion_length}", *extra]
        summary = reinforce("tiny", folder, model=start, problems=problems["train"], max_steps=args.steps,
                            settings=settings)
        metrics = [r for _, r in read_jsonl(folder / "metrics.jsonl") if "completions/mean_length" in r]
        rollout = trained = round(sum(r["completions/mean_length"] * rows for r in metrics))
        steps = summary["steps"]
    wall = time.time() - started
    evaluated = pass_at_1(folder, problems["held_out"], folder / "eval", args)
    return {"method": method, "seed": seed, "steps": steps, "settings": settings, "trained_tokens": trained,
            "rollout_tokens": rollout, "train_wall_s": round(wall, 1), **evaluated}


def run_name(method: str, seed: int, tag: str) -> str:
    """The name of one run's folder and result file: METHOD-seedS, or METHOD-seedS-TAG for a variant."""
    return f"{method}-seed{seed}" + (f"-{tag}" if tag else "")


def label(result: dict[str, Any]) -> str:
    """How the table names a run's method: with its variant tag, if any."""
    return result["method"] + (f" ({result['tag']})" if result.get("tag") else "")


def fingerprint(method: str, seed: int, args: argparse.Namespace) -> str:
    """What a result depends on: the budget, the sizes and the method's settings."""
    keys = ("train_problems", "held_out", "k", "steps", "rows_per_step", "start", "start_steps", "start_batch",
            "max_new_tokens", "max_completion_length")
    # The tag and the start's settings count only when given, so results recorded before they existed keep theirs.
    text = json.dumps([method, seed, {k: getattr(args, k) for k in keys}, settings_for(method, args)]
                      + ([args.tag] if args.tag else []) + ([args.start_set] if args.start_set else []))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def table(start: dict[str, Any], results: list[dict[str, Any]], teacher: dict[str, Any],
          ceiling: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The markdown table and its data: per run, pass@1 and the paired change from the start; per method, the
    mean change over seeds; per seed, on-policy distillation against GRPO."""
    lines = ["| method | seed | steps | trained tokens | rollout tokens | train wall (min) | held-out pass@1 | "
             "change vs start (paired) |", "|---|---|---|---|---|---|---|---|",
             f"| start (SFT) | - | {start['steps'] or '-'} | - | - | {start['train_wall_s'] / 60:.1f} | "
             f"{100 * start['pass@1']:.1f} ± {100 * start['pass@1_se']:.1f} | - |",
             f"| teacher (tiny) | - | - | - | - | - | {100 * ceiling['pass@1']:.1f} ± {100 * ceiling['pass@1_se']:.1f} | "
             f"{100 * paired_difference(start['per_problem'], ceiling['per_problem'])[0]:+.1f} |"]
    by_method: dict[str, list[float]] = {}
    data: dict[str, Any] = {"start": {k: v for k, v in start.items() if k != "per_problem"}, "teacher": teacher,
                            "teacher_eval": {k: v for k, v in ceiling.items() if k != "per_problem"}, "runs": []}
    for r in sorted(results, key=lambda r: (METHODS.index(r["method"]), r.get("tag") or "", r["seed"])):
        change, se = paired_difference(start["per_problem"], r["per_problem"])
        by_method.setdefault(label(r), []).append(change)
        lines.append(f"| {label(r)} | {r['seed']} | {r['steps']} | {r['trained_tokens']:,} | {r['rollout_tokens']:,} | "
                     f"{r['train_wall_s'] / 60:.1f} | {100 * r['pass@1']:.1f} ± {100 * r['pass@1_se']:.1f} | "
                     f"{100 * change:+.1f} ± {100 * se:.1f} |")
        data["runs"].append({**{k: v for k, v in r.items() if k != "per_problem"}, "change": change, "change_se": se})
    lines += ["", "| method | mean change over seeds | SE over seeds | seeds |", "|---|---|---|---|"]
    for method, changes in by_method.items():
        mean, se = mean_and_se(changes)
        lines.append(f"| {method} | {100 * mean:+.1f} | {100 * se:.1f} | {len(changes)} |")
        data.setdefault("by_method", {})[method] = {"mean_change": mean, "se_over_seeds": se, "seeds": len(changes)}
    grpo = {r["seed"]: r for r in results if r["method"] == "grpo" and not r.get("tag")}
    against = [r for r in results if r["method"] == "opd" and r["seed"] in grpo]
    if against:
        lines += ["", "| on-policy run | seed | minus GRPO (paired) |", "|---|---|---|"]
        for r in sorted(against, key=lambda r: (r.get("tag") or "", r["seed"])):
            diff, se = paired_difference(grpo[r["seed"]]["per_problem"], r["per_problem"])
            lines.append(f"| {label(r)} | {r['seed']} | {100 * diff:+.1f} ± {100 * se:.1f} |")
            data.setdefault("opd_minus_grpo", {})[f"{label(r)} seed {r['seed']}"] = {"diff": diff, "se": se}
    return "\n".join(lines) + "\n", data


def main(argv: list[str] | None = None) -> None:
    """Run (or resume) the comparison; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--train-problems", type=int, default=3600, help="the GRPO tiny recipe's problem count")
    parser.add_argument("--held-out", type=int, default=1000)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--steps", type=int, default=450, help="optimiser steps per method (the GRPO tiny recipe's)")
    parser.add_argument("--rows-per-step", type=int, default=128, help="sequences per step (GRPO's 8 x 16)")
    parser.add_argument("--start", help="an SFT checkpoint to start from (e.g. runs/quickstart/student-filtered) "
                                        "instead of training one on the first half of the corpus")
    parser.add_argument("--start-steps", type=int, default=3000, help="the quickstart's SFT steps")
    parser.add_argument("--start-batch", type=int, default=4)
    parser.add_argument("--start-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the start's recipe (students/tiny-student.yaml), e.g. weight_decay=0.1")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="teacher sampling and evaluation")
    parser.add_argument("--max-completion-length", type=int, default=160, help="student rollouts (opd, grpo)")
    parser.add_argument("--batch-size", type=int, default=64, help="sampling batch (teacher run, evaluations)")
    parser.add_argument("--jobs", type=int, default=1, help="method runs in parallel, one thread each")
    parser.add_argument("--set", action="append", default=[], help="METHOD:KEY=VALUE for one method's recipe")
    parser.add_argument("--tag", default="", help="a variant's name: its runs sit beside the main ones "
                                                  "(METHOD-seedS-TAG), e.g. --tag lr1e-4 --set opd:opd.learning_rate=1e-4")
    parser.add_argument("--quick", action="store_true", help="a minutes-long check of every stage (tiny sizes)")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_problems, args.held_out, args.k, args.steps, args.rows_per_step = 48, 40, 2, 3, 16
        args.start_steps, args.seeds, args.max_new_tokens, args.max_completion_length = 30, args.seeds[:1], 200, 96
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problems = stage_problems(out, args)
    teacher = stage_teacher(out, args, problems)
    log.info("teacher run: %s", teacher)
    start = stage_start(out, args, problems)
    log.info("start: pass@1 %.3f ± %.3f", start["pass@1"], start["pass@1_se"])
    (out / "results").mkdir(exist_ok=True)
    todo = []
    for seed in args.seeds:
        for method in args.methods:
            path = out / "results" / f"{run_name(method, seed, args.tag)}.json"
            key = fingerprint(method, seed, args)
            if (found := done(path)) is not None:
                if found.get("fingerprint") != key:
                    raise SystemExit(f"{path}: recorded with other settings than this command's; use another --out")
            else:
                todo.append((method, seed, path, key))
    todo.sort(key=lambda item: (LONGEST_FIRST.index(item[0]), item[1]))
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=context) as pool:
        futures = {pool.submit(run_one, m, s, str(out), vars(args), problems, start["model"]): (p, k)
                   for m, s, p, k in todo}
        for future in concurrent.futures.as_completed(futures):
            path, key = futures[future]
            result = {**future.result(), "fingerprint": key, "tag": args.tag}
            atomic_write_json(path, result)
            log.info("%s seed %d: pass@1 %.3f", result["method"], result["seed"], result["pass@1"])
    # The table holds every finished run of OUT, variants included.
    results = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((out / "results").glob("*.json"))]
    text, data = table(start, results, teacher, stage_teacher_eval(out, args, problems))
    atomic_write_text(out / "table.md", text)
    atomic_write_json(out / "result.json", {**data, "args": vars(args)})
    print(text)  # noqa: T201  (a script's result)


if __name__ == "__main__":
    main()
