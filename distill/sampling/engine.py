"""The teacher engine in vLLM's shape: build a Teacher once, call it with problems and a validated
SamplingConfig; `generate_run` drives it into a resumable run store (exactly once per key), with
adaptive `until_correct` sampling, a budget, progress and a summary."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from distill.errors import ConfigError
from distill.problems import fingerprint
from distill.records import Problem, Sample
from distill.sampling.backends.base import Backend, Completion, Request
from distill.sampling.config import Budget, SamplingConfig, sampling_identity
from distill.sampling.profile import TeacherProfile
from distill.sampling.progress import RunProgress
from distill.sampling.prompts import build_prompt
from distill.sampling.split import split_completion
from distill.sampling.store import RunStore, in_shard

log = logging.getLogger(__name__)

Verifier = Callable[[Problem, Sample], Any]


class Teacher:
    """A teacher profile bound to a built backend; cheap to call many times."""

    def __init__(self, profile: TeacherProfile, backend: Backend) -> None:
        self.profile = profile
        self.backend = backend
        self.label = f"{profile.model} ({profile.backend})"

    def stream(self, problems: Iterable[Problem], config: SamplingConfig,
               indices: dict[str, list[int]] | None = None) -> Iterator[Sample]:
        """Yield samples as they finish; `indices` limits each problem to some sample indices."""
        requests = []
        for problem in problems:
            wanted = list(range(config.n)) if indices is None else indices.get(problem.id, [])
            if wanted:
                requests.append(Request(problem.id, build_prompt(problem, self.profile), wanted))
        for completion in self.backend.stream(requests, config):
            yield self.to_sample(completion, config)

    def generate(self, problems: list[Problem], config: SamplingConfig) -> list[Sample]:
        """`config.n` samples per problem, in input order (problem, then sample_index 0..n-1)."""
        order = {p.id: i for i, p in enumerate(problems)}
        samples = list(self.stream(problems, config))
        return sorted(samples, key=lambda s: (order[s.problem_id], s.sample_index))

    def to_sample(self, completion: Completion, config: SamplingConfig) -> Sample:
        """A stored record from a backend completion: reasoning and content split, provenance kept."""
        reasoning, content, closed = split_completion(completion.text, completion.reasoning)
        return Sample(
            problem_id=completion.problem_id, sample_index=completion.sample_index, reasoning=reasoning,
            content=content, finish_reason=completion.finish_reason, teacher=self.label, sampling=config.to_dict(),
            prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
            seed=completion.seed, think_closed=closed,
        )

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()


def build_teacher(profile: TeacherProfile, **backend_options: Any) -> Teacher:
    """Build the profile's backend once (imports heavy engines lazily) and wrap it as a Teacher."""
    if profile.backend == "transformers":
        from distill.sampling.backends.transformers_backend import TransformersBackend

        return Teacher(profile, TransformersBackend(profile, **backend_options))
    if profile.backend == "openai":
        from distill.sampling.backends.openai_backend import OpenAIBackend

        return Teacher(profile, OpenAIBackend(profile, **backend_options))
    if profile.backend == "vllm":
        from distill.sampling.backends.vllm_backend import VllmBackend

        return Teacher(profile, VllmBackend(profile, **backend_options))
    raise ConfigError(f"backend {profile.backend!r}: expected transformers, vllm or openai")


def default_verifier(profile: TeacherProfile, unsafe_no_sandbox: bool = False) -> Verifier:
    """`distill.verify.verify_sample` with the profile's answer format, imported when first needed (code
    needs the sandbox unless `unsafe_no_sandbox`)."""
    def verify(problem: Problem, sample: Sample) -> Any:
        from distill.verify import verify_sample

        return verify_sample(problem, sample, answer_format=profile.answer_format, unsafe_no_sandbox=unsafe_no_sandbox)

    return verify


def cost_of(profile: TeacherProfile, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for some tokens at the profile's prices (0 when it has none)."""
    api = profile.api
    return (prompt_tokens * (api.price_input_per_million or 0.0) + completion_tokens * (api.price_output_per_million or 0.0)) / 1e6


def generate_run(
    problems: list[Problem],
    profile: TeacherProfile,
    config: SamplingConfig,
    out_dir: str | Path,
    *,
    problems_source: str | None = None,
    limit: int | None = None,
    shard: tuple[int, int] = (0, 1),
    until_correct: int | None = None,
    verifier: Verifier | None = None,
    budget: Budget | None = None,
    teacher: Teacher | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Sample `config.n` completions per problem into the run store at `out_dir`, resuming if it exists.

    Only keys `(problem_id, sample_index)` missing from the store are requested. `limit` takes the
    first problems, `shard=(I, N)` this process's share. With `until_correct=K` samples are drawn in
    waves and a problem stops once K of its samples pass `verifier`. Returns the summary (also
    written to summary.json).
    """
    if until_correct is not None and until_correct < 1:
        raise ConfigError(f"--until-correct {until_correct}: expected at least 1")
    manifest = {
        "teacher": profile.to_dict(), "teacher_identity": profile.identity(), "backend": profile.backend,
        "sampling": config.to_dict(), "sampling_identity": sampling_identity(config),
        "problems": {"source": problems_source, "fingerprint": fingerprint(problems), "count": len(problems)},
        "problems_fingerprint": fingerprint(problems),
    }
    selected = [p for p in problems[:limit] if in_shard(p.id, shard)]
    store = RunStore(out_dir, manifest, shard)
    started = time.perf_counter()
    stats: Counter[str] = Counter()
    stopped: str | None = None
    verify = verifier or default_verifier(profile)
    by_id = {p.id: p for p in selected}
    pending = {p.id: [i for i in range(config.n) if (p.id, i) not in store.samples] for p in selected}
    correct = Counter[str]()
    if until_correct is not None:
        for (pid, _), sample in store.samples.items():
            if pid in by_id and _judge(verify, by_id[pid], sample):
                correct[pid] += 1
    todo = sum(len(v) for v in pending.values())
    log.info("%s: %d problems in this shard, %d samples stored, %d to sample", out_dir, len(selected),
             len(selected) * config.n - todo, todo)
    owned = teacher is None
    teacher = teacher or (build_teacher(profile) if todo else None)
    bar = RunProgress(todo, len(selected), enabled=progress)
    try:
        while teacher is not None and stopped is None:
            wave = _next_wave(pending, correct, until_correct)
            if not wave:
                break
            for sample in teacher.stream([by_id[pid] for pid in wave], config, wave):
                if until_correct is not None:
                    _attach_verdict(sample, verify(by_id[sample.problem_id], sample))
                    correct[sample.problem_id] += int(sample.correct is True)
                store.write(sample)
                stats["samples"] += 1
                stats["completion_tokens"] += sample.completion_tokens or 0
                stats["prompt_tokens"] += sample.prompt_tokens or 0
                bar.advance(sample.completion_tokens or 0)
                cost = cost_of(profile, stats["prompt_tokens"], stats["completion_tokens"])
                reached = (budget or Budget()).exceeded(stats["samples"], stats["completion_tokens"], cost)
                if reached:
                    stopped = f"budget: {reached}"
                    log.warning("%s: stopping cleanly, the budget's %s is reached", out_dir, reached)
                    break
            if until_correct is None:
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
        raise
    finally:
        bar.close()
        if owned and teacher is not None:
            teacher.close()
        saved = sum(len(v) for pid, v in pending.items() if until_correct is not None and correct[pid] >= until_correct)
        summary = _summary(store, selected, config, stats, time.perf_counter() - started, stopped, saved, shard,
                           cost_of(profile, stats["prompt_tokens"], stats["completion_tokens"]))
        store.write_summary(summary)
        store.close()
    return summary


def _judge(verify: Verifier, problem: Problem, sample: Sample) -> bool:
    if sample.correct is None and sample.verifier is None:
        _attach_verdict(sample, verify(problem, sample))
    return sample.correct is True


def _attach_verdict(sample: Sample, verdict: Any) -> None:
    sample.correct = verdict.correct
    sample.extracted = getattr(verdict, "extracted", None)
    sample.verifier = getattr(verdict, "verifier", None)
    sample.reason = getattr(verdict, "reason", None)


def _next_wave(pending: dict[str, list[int]], correct: Counter[str], until_correct: int | None) -> dict[str, list[int]]:
    """The sample indices to request next; removes them from `pending`."""
    wave: dict[str, list[int]] = {}
    for pid, indices in pending.items():
        if not indices:
            continue
        take = len(indices) if until_correct is None else max(0, until_correct - correct[pid])
        if take:
            wave[pid], pending[pid] = indices[:take], indices[take:]
    return wave


def _summary(store: RunStore, selected: list[Problem], config: SamplingConfig, stats: Counter[str], wall: float,
             stopped: str | None, saved: int, shard: tuple[int, int], cost: float) -> dict[str, Any]:
    """Counts over the whole store, plus what this process did (wall time, throughput, cost)."""
    samples = list(store.samples.values())
    finish = Counter(str(s.finish_reason) for s in samples)
    selected_ids = {p.id for p in selected}
    missing = sum(1 for p in selected for i in range(config.n) if (p.id, i) not in store.samples)
    return {
        "samples": len(samples),
        "problems": len({s.problem_id for s in samples}),
        "completion_tokens": sum(s.completion_tokens or 0 for s in samples),
        "prompt_tokens": sum(s.prompt_tokens or 0 for s in samples),
        "finish_reasons": dict(finish.most_common()),
        "think_unclosed": sum(1 for s in samples if s.think_closed is False),
        "shard": f"{shard[0]}/{shard[1]}",
        "shard_problems": len(selected_ids),
        "shard_missing": missing,
        "complete": missing - saved == 0 and stopped is None,
        "stopped": stopped,
        "saved_by_until_correct": saved,
        "this_run": {
            "samples": stats["samples"],
            "completion_tokens": stats["completion_tokens"],
            "wall_s": round(wall, 3),
            "samples_per_s": round(stats["samples"] / wall, 3) if wall > 0 else None,
            "tokens_per_s": round(stats["completion_tokens"] / wall, 1) if wall > 0 else None,
            "cost_usd": round(cost, 6),
        },
    }
