"""The `vllm` backend: vLLM's offline engine (`LLM`, `SamplingParams(n=...)`) with tensor parallelism,
imported lazily. Requests go through the engine's `add_request`/`step` loop so each completion is
yielded (and stored) as its request finishes, not when the whole batch returns.

Written against vLLM >= 0.10, < 0.12 (the `vllm` extra); the keyword arguments passed are checked
against a snapshot of that version's signatures in tests/sampling/vllm_signatures.json. Data
parallelism is several engines: one `distill generate --shard I/N` process per engine (each with
its own CUDA_VISIBLE_DEVICES), see scripts/slurm_generate.sh.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from distill.errors import ConfigError
from distill.sampling.backends.base import Completion, Request, sample_seed
from distill.sampling.config import SamplingConfig
from distill.sampling.profile import TeacherProfile
from distill.sampling.prompts import render_prompt

log = logging.getLogger(__name__)

VLLM_REQUIREMENT = "vllm>=0.10,<0.12"


def llm_kwargs(profile: TeacherProfile, seed: int = 0) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM(...)` from a profile."""
    options = profile.vllm
    kwargs: dict[str, Any] = {
        "model": profile.engine_model(),
        "tensor_parallel_size": options.tensor_parallel_size,
        "dtype": options.dtype,
        "seed": seed,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "trust_remote_code": False,
    }
    if options.max_model_len is not None:
        kwargs["max_model_len"] = options.max_model_len
    return kwargs


def sampling_kwargs(config: SamplingConfig, n: int, seed: int) -> dict[str, Any]:
    """Keyword arguments for `vllm.SamplingParams(...)` for `n` samples of one prompt."""
    kwargs: dict[str, Any] = {"n": n, "temperature": config.temperature, "top_p": config.top_p,
                              "max_tokens": config.max_new_tokens, "seed": seed}
    if config.stop:
        kwargs["stop"] = list(config.stop)
    return kwargs


class VllmBackend:
    """One vLLM engine (tensor parallel over `vllm.tensor_parallel_size` GPUs)."""

    name = "vllm"

    def __init__(self, profile: TeacherProfile, llm: Any = None) -> None:
        if profile.vllm.data_parallel_size > 1:
            raise ConfigError("vllm.data_parallel_size: run one `distill generate --shard I/N` per engine "
                              "(scripts/slurm_generate.sh shows how); one process drives one engine")
        try:
            import vllm
        except ImportError as err:
            raise ConfigError(f"the vllm backend needs vllm installed: pip install 'distill[vllm]' "
                              f"({VLLM_REQUIREMENT}, on a CUDA machine)") from err
        self.vllm = vllm
        self.profile = profile
        self.llm = llm if llm is not None else vllm.LLM(**llm_kwargs(profile, profile.sampling.seed))
        self.tokenizer = self.llm.get_tokenizer()

    def stream(self, requests: Sequence[Request], config: SamplingConfig) -> Iterator[Completion]:
        """Add every request to the engine, then step it and yield each request's samples as it finishes."""
        engine = self.llm.llm_engine
        wanted: dict[str, tuple[Request, int]] = {}
        for number, request in enumerate(requests):
            seed = sample_seed(config.seed, request.problem_id, request.sample_indices[0])
            params = self.vllm.SamplingParams(**sampling_kwargs(config, len(request.sample_indices), seed))
            request_id = f"{number}:{request.problem_id}"
            wanted[request_id] = (request, seed)
            engine.add_request(request_id, render_prompt(request.messages, self.tokenizer, self.profile), params)
        try:
            while engine.has_unfinished_requests():
                for output in engine.step():
                    if not output.finished:
                        continue
                    request, seed = wanted.pop(output.request_id)
                    prompt_tokens = len(output.prompt_token_ids or [])
                    for choice in output.outputs:
                        yield Completion(request.problem_id, request.sample_indices[choice.index], choice.text,
                                         choice.finish_reason, None, prompt_tokens, len(choice.token_ids), seed)
        finally:
            if wanted:  # the consumer stopped early (budget, error): free the engine's slots
                engine.abort_request(list(wanted))

    def close(self) -> None:
        """Drop the engine."""
        self.llm = None
