"""`evaluate()`: R1's evaluation protocol on one model or teacher and several benchmarks.

For each benchmark the problems go through the sampling engine into out_dir/<bench>/run/ (so a
crashed evaluation resumes where it stopped, on any backend), the samples through the verifiers,
and the numbers of `distill.evaluate.metrics` into:

    out_dir/summary.json              per benchmark: pass@1 ± SE (and a bootstrap 95 % interval),
                                      pass@k' for k' = 1, 2, 4, ..., k, cons@k, mean completion
                                      tokens, truncation rate; plus the model and the protocol
    out_dir/<bench>/problems.jsonl    per problem: n, correct, pass@1, pass@k', the cons@k vote
    out_dir/<bench>/samples.jsonl     every verified sample (with `correct`, `extracted`, `reason`)

R1's protocol is the default: no system prompt, the math suffix asking for `\\boxed{}`,
temperature 0.6, top-p 0.95, the model's long maximum length, `<think>\\n` opened where the
profile says so, k samples per problem. pass@1 in the summary is the mean of the saved per-sample
`correct` values, with `null` (could not be judged) counted as incorrect.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from distill.atomic import atomic_write_json
from distill.errors import DistillError
from distill.evaluate.benches import bench_name, load_bench
from distill.evaluate.metrics import (
    AnswerEqual,
    aggregate,
    k_values,
    problem_result,
    string_equal,
    with_number_fast_path,
)
from distill.jsonl import read_jsonl, write_jsonl
from distill.paths import public_name
from distill.records import Problem, Sample
from distill.rundir import read_samples
from distill.sampling import generate_run, resolve_teacher
from distill.verify import answers_equal, ensure_sandbox, verify_samples

log = logging.getLogger(__name__)

NULLS_NOTE = "pass@1 is the mean of the per-sample `correct` values; samples that could not be judged (null) count as incorrect"


def build_profile(model: str | None = None, teacher: str | None = None, backend: str | None = None,
                  base_url: str | None = None) -> Any:
    """The teacher profile to evaluate: a profile (a shipped name or a YAML path; its backend unless
    `backend` is given), or one built from a checkpoint's own files (chat template, and temperature, top-p
    and max_new_tokens from its generation config) with `backend` (default transformers)."""
    if (model is None) == (teacher is None):
        raise DistillError("eval: give exactly one of --model PATH or --teacher NAME|teachers/X.yaml")
    if teacher is not None:
        return resolve_teacher(teacher=teacher, backend=backend)
    profile = resolve_teacher(model=model, backend=backend, base_url=base_url)
    # The checkpoint's own maximum length, where its generation config states one.
    generation = Path(profile.engine_model()) / "generation_config.json"
    if generation.exists():
        limit = json.loads(generation.read_text(encoding="utf-8")).get("max_new_tokens")
        if isinstance(limit, int) and limit > 0:
            profile.sampling = profile.sampling.replace(max_new_tokens=limit)
    return profile


def model_max_length(model: str) -> int | None:
    """The context length of a local checkpoint (`max_position_embeddings`), or None when unknown."""
    config = Path(model) / "config.json"
    if not config.exists():
        return None
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("max_position_embeddings")
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def sampling_config(profile: Any, k: int, max_new_tokens: int | None = None, temperature: float | None = None,
                    top_p: float | None = None, seed: int | None = None) -> Any:
    """The profile's sampling defaults (R1's) with k samples per problem and any explicit overrides.

    Without `max_new_tokens` the profile's long maximum is used, capped at the context length of a
    local checkpoint, since no backend can generate past it.
    """
    config = profile.sampling.replace(n=k, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                      seed=seed)
    if max_new_tokens is None:
        limit = model_max_length(profile.engine_model())
        if limit is not None and config.max_new_tokens > limit:
            log.info("max_new_tokens %d capped at the model's context length %d", config.max_new_tokens, limit)
            config = config.replace(max_new_tokens=limit)
    return config


def cons_equal(kind: str) -> AnswerEqual | None:
    """How answers of a kind vote together in cons@k: math by equivalence, choice/exact by normalised
    string; None for code, where a majority vote over programs has no agreed definition."""
    if kind == "math":
        return with_number_fast_path(answers_equal)
    if kind in ("choice", "exact"):
        return string_equal
    return None


def _verify(problems: list[Problem], samples: list[Sample], answer_format: str, workers: int | None,
            unsafe_no_sandbox: bool = False) -> list[Sample]:
    by_id = {p.id: p for p in problems}
    return list(verify_samples(by_id, samples, workers=workers, answer_format=answer_format,
                               unsafe_no_sandbox=unsafe_no_sandbox))


def _complete_samples(problems: list[Problem], samples: list[Sample], k: int, run_dir: Path) -> dict[str, list[Sample]]:
    """The first k samples of every problem, or an error naming a problem that has fewer."""
    by_problem: dict[str, dict[int, Sample]] = defaultdict(dict)
    for sample in samples:
        if sample.sample_index < k:
            by_problem[sample.problem_id].setdefault(sample.sample_index, sample)
    result: dict[str, list[Sample]] = {}
    for problem in problems:
        got = by_problem.get(problem.id, {})
        if len(got) < k:
            raise DistillError(f"{run_dir}: problem {problem.id!r} has {len(got)} of {k} samples (the sampling run "
                               "stopped early, e.g. on a budget); run the same command again to resume")
        result[problem.id] = [got[i] for i in range(k)]
    return result


def evaluate_bench(spec: str, profile: Any, config: Any, out_dir: Path, limit: int | None = None,
                   workers: int | None = None, unsafe_no_sandbox: bool = False, **generate_kwargs: Any) -> dict[str, Any]:
    """Sample, verify and score one benchmark into out_dir/<bench>/; returns its summary entry."""
    name = bench_name(spec)
    # The benchmark itself (GPQA's shuffled choices) does not change with the sampling seed, so runs with
    # different seeds evaluate the same questions.
    everything = load_bench(spec)
    problems = everything[:limit] if limit is not None else everything
    if any(p.kind == "code" for p in problems):
        ensure_sandbox(unsafe_no_sandbox)  # refuse before sampling what could not be verified
    bench_dir = out_dir / name
    run_dir = bench_dir / "run"
    started = time.monotonic()
    # The whole benchmark goes in with `limit`, so the run's fingerprint stays that of the benchmark
    # and a later run with a larger --limit resumes the same store.
    generate_run(everything, profile, config, run_dir, problems_source=spec, limit=limit, **generate_kwargs)
    k = config.n
    by_problem = _complete_samples(problems, list(read_samples(run_dir)), k, run_dir)
    ordered = [s for p in problems for s in by_problem[p.id]]
    verified = _verify(problems, ordered, profile.answer_format, workers, unsafe_no_sandbox)
    by_id: dict[str, list[Sample]] = defaultdict(list)
    for sample in verified:
        by_id[sample.problem_id].append(sample)
    ks = k_values(k)
    equal_by_kind: dict[str, AnswerEqual | None] = {}
    caches: dict[str, dict[tuple[str, str], bool]] = defaultdict(dict)
    rows = []
    for problem in problems:
        if problem.kind not in equal_by_kind:
            equal_by_kind[problem.kind] = cons_equal(problem.kind)
        row = problem_result(problem.id, by_id[problem.id], ks, equal_by_kind[problem.kind], caches[problem.kind])
        rows.append({**row, "kind": problem.kind, "reference": problem.answer if problem.kind != "code" else None})
    write_jsonl(bench_dir / "samples.jsonl", verified)
    write_jsonl(bench_dir / "problems.jsonl", rows)
    summary = aggregate(rows, verified, k)
    summary.update({"source": public_name(spec), "dir": name, "kinds": sorted({p.kind for p in problems}),
                    "seconds": round(time.monotonic() - started, 3)})
    if unsafe_no_sandbox and "code" in summary["kinds"]:
        summary["unsafe_no_sandbox"] = True  # its code ran without a sandbox: a program could forge its verdict
    log.info("%s: pass@1 %.3f ± %.3f over %d problems x %d samples", name, summary["pass@1"], summary["pass@1_se"],
             len(problems), k)
    return summary


def evaluate(model: str | None = None, teacher: str | None = None, benches: list[str] | None = None, k: int = 4,
             out_dir: str | Path = "eval", max_new_tokens: int | None = None, limit: int | None = None,
             temperature: float | None = None, top_p: float | None = None, seed: int | None = None,
             backend: str | None = None, base_url: str | None = None, workers: int | None = None,
             profile: Any = None, label: str | None = None, unsafe_no_sandbox: bool = False,
             **generate_kwargs: Any) -> dict[str, Any]:
    """Evaluate a model (`model`: a checkpoint, or `teacher`: a profile YAML, or a built `profile`) on
    `benches` with k samples per problem; writes out_dir/summary.json and per-benchmark results and
    returns the summary. Running it again resumes the sampling runs under out_dir."""
    if not benches:
        raise DistillError("eval: give at least one benchmark (--bench NAME|PATH[,...])")
    if k < 1:
        raise DistillError(f"--k {k}: expected at least 1 sample per problem")
    if limit is not None and limit < 1:
        raise DistillError(f"--limit {limit}: expected at least 1 problem")
    if profile is None:
        profile = build_profile(model, teacher, backend, base_url)
    config = sampling_config(profile, k, max_new_tokens, temperature, top_p, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [bench_name(b) for b in benches]
    if len(set(names)) != len(names):
        raise DistillError(f"--bench {','.join(benches)}: two benchmarks share the name {names!r}")
    results = {bench_name(spec): evaluate_bench(spec, profile, config, out, limit, workers, unsafe_no_sandbox,
                                                **generate_kwargs)
               for spec in benches}
    summary = {
        "model": label or profile.name,
        "profile": profile.to_dict(),
        "k": k,
        "sampling": config.to_dict(),
        "limit": limit,
        "note": NULLS_NOTE,
        "benchmarks": results,
    }
    atomic_write_json(out / "summary.json", summary)  # a reader never sees a half-written summary
    return summary


def read_results(eval_dir: str | Path, bench: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The saved per-problem and per-sample results of one benchmark of an evaluation directory."""
    bench_dir = Path(eval_dir) / bench
    return ([row for _, row in read_jsonl(bench_dir / "problems.jsonl")],
            [row for _, row in read_jsonl(bench_dir / "samples.jsonl")])

