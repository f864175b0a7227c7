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
from distill.logprobs import encode as encode_logprobs
from distill.problems import fingerprint
from distill.records import Message, Problem, Sample
from distill.rundir import RunDir, in_shard
from distill.sampling.backends.base import Backend, Completion, Request
from distill.sampling.backends.openai_backend import OpenAIBackend, checked_key
from distill.sampling.backends.transformers_backend import TransformersBackend
from distill.sampling.backends.vllm_backend import VllmBackend
from distill.sampling.config import Budget, SamplingConfig, sampling_identity
from distill.sampling.profile import TeacherProfile
from distill.sampling.progress import RunProgress
from distill.sampling.prompts import build_prompt
from distill.text import split_completion
from distill.verify import verify_sample

LOGPROBS = "logprobs"  # the side file of a run's per-token teacher logprobs

log = logging.getLogger(__name__)

Verifier = Callable[[Problem, Sample], Any]
# Why a run with a token or cost cap stopped when a sample came without a token count.
NO_TOKEN_COUNTS = "error: no token counts for the budget"


class Teacher:
    """A teacher profile bound to a built backend; cheap to call many times."""

    def __init__(self, profile: TeacherProfile, backend: Backend) -> None:
        self.profile = profile
        self.backend = backend
        # Artifacts name the teacher by its public id (a model id or the profile's name), never a local path.
        self.label = profile.public_id()

    def stream(self, problems: Iterable[Problem], config: SamplingConfig,
               indices: dict[str, list[int]] | None = None) -> Iterator[Sample]:
        """Yield samples as they finish; `indices` limits each problem to some sample indices."""
        for _, sample in self.completions(problems, config, indices):
            yield sample

    def completions(self, problems: Iterable[Problem], config: SamplingConfig,
                    indices: dict[str, list[int]] | None = None) -> Iterator[tuple[Completion, Sample]]:
        """Yield each backend completion with its stored record (the engine keeps the completion's
        token ids and logprobs beside the record)."""
        requests = []
        for problem in problems:
            wanted = list(range(config.n)) if indices is None else indices.get(problem.id, [])
            if wanted:
                requests.append(Request(problem.id, build_prompt(problem, self.profile), wanted))
        messages = {r.problem_id: r.messages for r in requests}
        sampling = config.to_dict()  # once per call, not per sample: the store's own Python competes with the engine
        for completion in self.backend.stream(requests, config):
            yield completion, self.to_sample(completion, sampling, messages[completion.problem_id])

    def generate(self, problems: list[Problem], config: SamplingConfig) -> list[Sample]:
        """`config.n` samples per problem, in input order (problem, then sample_index 0..n-1)."""
        order = {p.id: i for i, p in enumerate(problems)}
        samples = list(self.stream(problems, config))
        return sorted(samples, key=lambda s: (order[s.problem_id], s.sample_index))

    def to_sample(self, completion: Completion, sampling: dict[str, Any], prompt: list[Message] | None = None) -> Sample:
        """A stored record from a backend completion: reasoning and content split, the prompt as sent,
        provenance kept (`sampling`: the run's `SamplingConfig.to_dict()`, copied into the record)."""
        reasoning, content, closed = split_completion(completion.text, completion.reasoning)
        return Sample(
            problem_id=completion.problem_id, sample_index=completion.sample_index, reasoning=reasoning,
            content=content, finish_reason=completion.finish_reason, teacher=self.label,
            sampling=dict(sampling),
            prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
            seed=completion.seed, think_closed=closed, prompt=prompt,
        )

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()


def build_teacher(profile: TeacherProfile, **backend_options: Any) -> Teacher:
    """Build the profile's backend once (each backend imports its heavy engine when built) and wrap it as a
    Teacher."""
    if profile.backend == "transformers":
        return Teacher(profile, TransformersBackend(profile, **backend_options))
    if profile.backend == "openai":
        return Teacher(profile, OpenAIBackend(profile, **backend_options))
    if profile.backend == "vllm":
        return Teacher(profile, VllmBackend(profile, **backend_options))
    raise ConfigError(f"backend {profile.backend!r}: expected transformers, vllm or openai")


def default_verifier(profile: TeacherProfile, unsafe_no_sandbox: bool = False) -> Verifier:
    """`distill.verify.verify_sample` with the profile's answer format (code needs the sandbox unless
    `unsafe_no_sandbox`)."""
    def verify(problem: Problem, sample: Sample) -> Any:
        return verify_sample(problem, sample, answer_format=profile.answer_format, unsafe_no_sandbox=unsafe_no_sandbox)

    return verify


def cost_of(profile: TeacherProfile, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for some tokens at the profile's prices (0 when it has none)."""
    api = profile.api
    return (prompt_tokens * (api.price_input_per_million or 0.0) + completion_tokens * (api.price_output_per_million or 0.0)) / 1e6


def run_manifest(profile: TeacherProfile, config: SamplingConfig, problems: list[Problem],
                 problems_source: str | None) -> dict[str, Any]:
    """What a sampling run records about itself: the teacher (public fields, plus its local checkpoint
    path in the local-only `local` group), the sampling config and the problem set."""
    return {
        "teacher": profile.to_dict(), "teacher_identity": profile.identity(), "backend": profile.backend,
        "sampling": config.to_dict(), "sampling_identity": sampling_identity(config),
        "problems": {"source": problems_source, "fingerprint": fingerprint(problems), "count": len(problems)},
        "problems_fingerprint": fingerprint(problems),
        "local": profile.local_fields(),
    }


def counts_tokens(budget: Budget) -> bool:
    """Whether a budget needs every sample's token count (a token or cost cap)."""
    return budget.max_tokens is not None or budget.max_cost is not None


def preflight(profile: TeacherProfile, budget: Budget | None) -> None:
    """Refuse up front, before the run directory is touched, what the run could not honour: a cost cap
    without prices in the profile, or (openai) a key that would travel in clear or is not set."""
    if profile.backend == "openai":
        checked_key(profile)
    if budget is not None and budget.max_cost is not None and not profile.api.has_prices():
        raise ConfigError(f"--max-cost {budget.max_cost:g}: the teacher profile {profile.name} has no prices "
                          "(api.price_input_per_million and api.price_output_per_million), so no cost can be counted")


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
    """Sample `config.n` completions per problem into the run directory `out_dir`, resuming if it exists.

    Only keys `(problem_id, sample_index)` missing from the run are requested, and each completion is
    stored as it arrives. `limit` takes the first problems, `shard=(I, N)` this process's share (the run
    records N; another N is refused). With `until_correct=K` samples are drawn in waves and a problem
    stops once K of its samples pass `verifier`. With `config.logprobs=K` the teacher's top-K logprobs
    of every token go to the shard's sidecar (`distill.logprobs`). Returns the summary (also written
    to summary.json); `summary["ok"]` is the exit-code rule of every sampling command: every key stored,
    or a budget or `until_correct` stopped the run. An error from the backend is re-raised after the
    summary (with what it cost) is written; nothing already stored is lost.
    """
    if until_correct is not None and until_correct < 1:
        raise ConfigError(f"--until-correct {until_correct}: expected at least 1")
    preflight(profile, budget)
    selected = [p for p in problems[:limit] if in_shard(p.id, shard)]
    run = RunDir(out_dir)
    run.start(run_manifest(profile, config, problems, problems_source), shards=shard[1])
    writer = run.open_shard(shard, sides=(LOGPROBS,) if config.logprobs else ())
    started = time.perf_counter()
    stats: Counter[str] = Counter()
    stopped: str | None = None
    verify = verifier or default_verifier(profile)
    by_id = {p.id: p for p in selected}
    try:
        stored = {sample.key: sample for sample in run.read_samples()}
    except BaseException:
        writer.close()
        raise
    pending = {p.id: [i for i in range(config.n) if (p.id, i) not in stored] for p in selected}
    correct = Counter[str]()
    if until_correct is not None:
        for (pid, _), sample in stored.items():
            if pid in by_id and _judge(verify, by_id[pid], sample):
                correct[pid] += 1
    todo = sum(len(v) for v in pending.values())
    log.info("%s: %d problems in this shard, %d samples stored, %d to sample", out_dir, len(selected),
             len(selected) * config.n - todo, todo)
    owned = teacher is None
    bar = RunProgress(todo, len(selected), enabled=progress)
    try:
        teacher = teacher or (build_teacher(profile) if todo else None)
        while teacher is not None and stopped is None:
            wave = _next_wave(pending, correct, until_correct)
            if not wave:
                break
            for completion, sample in teacher.completions([by_id[pid] for pid in wave], config, wave):
                if until_correct is not None:
                    _attach_verdict(sample, verify(by_id[sample.problem_id], sample))
                    correct[sample.problem_id] += int(sample.correct is True)
                writer.write(sample, _sides(completion, config))
                stored[sample.key] = sample
                stats["samples"] += 1
                stats["completion_tokens"] += sample.completion_tokens or 0
                stats["prompt_tokens"] += sample.prompt_tokens or 0
                bar.advance(sample.completion_tokens or 0)
                if sample.completion_tokens is None and budget is not None and counts_tokens(budget):
                    # The sample is stored; the budget cannot be kept without token counts, so stop here.
                    stopped = NO_TOKEN_COUNTS
                    break
                cost = cost_of(profile, stats["prompt_tokens"], stats["completion_tokens"])
                reached = (budget or Budget()).exceeded(stats["samples"], stats["completion_tokens"], cost)
                if reached:
                    stopped = f"budget: {reached}"
                    log.warning("%s: stopping cleanly, the budget's %s is reached", out_dir, reached)
                    break
            if until_correct is None:
                break
        if stopped == NO_TOKEN_COUNTS:
            raise ConfigError(f"--max-tokens/--max-cost: the server sends no token usage and the profile "
                              f"{profile.name} has no `tokenizer:` to count tokens, so the budget cannot be kept; "
                              "set a local tokenizer in the profile or drop the token budget")
    except KeyboardInterrupt:
        stopped = "interrupted"
        raise
    except Exception as err:
        stopped = stopped if stopped == NO_TOKEN_COUNTS else f"error: {err}"
        # Completions the server returned before the error are stored; those it never sent are counted.
        stats["lost_to_error"] = int(getattr(err, "lost", 0) or 0)
        raise
    finally:
        bar.close()
        if owned and teacher is not None:
            teacher.close()
        saved = sum(len(v) for pid, v in pending.items() if until_correct is not None and correct[pid] >= until_correct)
        summary = _summary(stored, selected, config, stats, time.perf_counter() - started, stopped, saved, shard,
                           cost_of(profile, stats["prompt_tokens"], stats["completion_tokens"]))
        writer.close()
        run.write_summary(summary, shard)
    return summary


def _sides(completion: Completion, config: SamplingConfig) -> dict[str, bytes] | None:
    """The side records of one completion: its logprob record when the run asks for logprobs."""
    if not config.logprobs:
        return None
    lp = completion.logprobs
    if lp is None:
        raise ConfigError("logprobs: this backend returned no per-token logprobs; it cannot serve --logprobs")
    return {LOGPROBS: encode_logprobs(lp.token_ids, lp.sampled, lp.top_ids, lp.top_logprobs,
                                      completion.prompt_token_ids or ())}


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


def _summary(stored: dict[tuple[str, int], Sample], selected: list[Problem], config: SamplingConfig,
             stats: Counter[str], wall: float, stopped: str | None, saved: int, shard: tuple[int, int],
             cost: float) -> dict[str, Any]:
    """Counts over the whole run, plus what this process did (wall time, throughput, cost), and whether
    the run met its goal (`ok`: the exit-code rule of every command that samples)."""
    samples = list(stored.values())
    finish = Counter(str(s.finish_reason) for s in samples)
    missing = sum(1 for p in selected for i in range(config.n) if (p.id, i) not in stored) - saved
    budget_stop = stopped is not None and stopped.startswith("budget")
    return {
        "samples": len(samples),
        "problems": len({s.problem_id for s in samples}),
        "completion_tokens": sum(s.completion_tokens or 0 for s in samples),
        "prompt_tokens": sum(s.prompt_tokens or 0 for s in samples),
        "finish_reasons": dict(finish.most_common()),
        "think_unclosed": sum(1 for s in samples if s.think_closed is False),
        "shard": f"{shard[0]}/{shard[1]}",
        "shard_problems": len(selected),
        "shard_missing": missing,
        "complete": missing == 0 and stopped is None,
        "ok": missing == 0 or budget_stop,
        "stopped": stopped,
        "lost_to_error": stats["lost_to_error"],
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
