"""The `transformers` backend: batched `generate` with left padding, rows grouped by prompt length,
KV cache, stop at EOS or stop strings, seeded per batch. The CPU backend of tests and quickstart.

With `SamplingConfig.logprobs = K` a logits processor (`LogprobRecorder`) records, at every step, the
top-K of the raw distribution (temperature 1, before top-p) and the sampled token's logprob; full
logits are never kept (at 32k tokens x 152k vocabulary they would be 19 GB per sequence)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from distill.errors import ConfigError, DistillError
from distill.sampling.backends.base import Completion, Request, TokenLogprobs, sample_seed
from distill.sampling.config import SamplingConfig
from distill.sampling.profile import TeacherProfile
from distill.sampling.prompts import render_prompt

log = logging.getLogger(__name__)


def load_tokenizer(path: str) -> Any:
    """The checkpoint's tokenizer; the fast tokenizer from tokenizer.json when there is one, since
    `AutoTokenizer` swaps Qwen2's own pre-tokenizer regex in for qwen2 models, which changes the ids of a
    tokenizer trained elsewhere (the tiny world's)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (Path(path) / "tokenizer.json").exists():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    else:
        tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class LogprobRecorder:
    """A logits processor that keeps, per generation step and row, the K best ids of the raw distribution
    with their logprobs, and (one step later, once it is drawn) the sampled token's logprob.

    It must run before the temperature and top-p warpers, which `generate` appends after every custom
    processor, so the distribution it sees is the model's own at temperature 1. Only the previous step's
    log-softmax is held (rows x vocabulary), never the whole sequence's logits.
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.top_ids: list[Any] = []  # per step: [rows, K] int32
        self.top_logprobs: list[Any] = []  # per step: [rows, K] float32
        self.sampled: list[Any] = []  # per step after the first: [rows] float32 (the previous step's token)
        self._last: Any = None  # the previous step's log-softmax [rows, vocabulary]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """Record this step and return the scores unchanged."""
        import torch

        if self._last is not None:
            self.sampled.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1).float().cpu().numpy())
        logprobs = torch.log_softmax(scores.float(), dim=-1)
        values, ids = logprobs.topk(min(self.k, logprobs.shape[-1]), dim=-1)
        self.top_ids.append(ids.to(torch.int32).cpu().numpy())
        self.top_logprobs.append(values.cpu().numpy())
        self._last = logprobs
        return scores

    def finish(self, sequences: Any) -> None:
        """Record the last step's sampled token (no processor call follows it) and drop the held row."""
        if self._last is not None and len(self.sampled) < len(self.top_ids):
            self.sampled.append(self._last.gather(1, sequences[:, -1:].to(self._last.device)).squeeze(1).float().cpu().numpy())
        self._last = None

    def row(self, row: int, token_ids: list[int]) -> TokenLogprobs:
        """The logprobs of one row's first `len(token_ids)` generated tokens."""
        import numpy as np

        steps = len(token_ids)
        if steps > len(self.top_ids) or steps > len(self.sampled):
            raise DistillError(f"logprobs: recorded {len(self.top_ids)} steps for {steps} generated tokens")
        return TokenLogprobs(
            token_ids=np.asarray(token_ids, dtype=np.int32),
            sampled=np.asarray([self.sampled[t][row] for t in range(steps)], dtype=np.float32),
            top_ids=np.stack([self.top_ids[t][row] for t in range(steps)]).astype(np.int32).reshape(steps, -1),
            top_logprobs=np.stack([self.top_logprobs[t][row] for t in range(steps)]).astype(np.float32).reshape(steps, -1),
        )


class TransformersBackend:
    """Batched sampling with a Hugging Face causal LM on CPU or one GPU."""

    name = "transformers"

    def __init__(self, profile: TeacherProfile, model: Any = None, tokenizer: Any = None,
                 logits_processor: Any = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.profile = profile
        self.logits_processor = logits_processor  # extra processors (benchmarks shape lengths with one)
        self.batch_size = profile.local.batch_size
        self.sort_by_length = profile.local.sort_by_length
        if model is None and not Path(profile.engine_model()).exists():
            raise ConfigError(f"model {profile.model!r}: no such local checkpoint (the transformers backend "
                              "loads local paths; download the model first)")
        self.tokenizer = tokenizer or load_tokenizer(profile.engine_model())
        if model is None:
            dtype = getattr(torch, profile.local.dtype, None) if profile.local.dtype != "auto" else "auto"
            if dtype is None:
                raise ConfigError(f"local.dtype: unknown torch dtype {profile.local.dtype!r}")
            model = AutoModelForCausalLM.from_pretrained(profile.engine_model(), dtype=dtype)
            model.to(profile.local.device)
        self.model = model.eval()
        eos = self.model.generation_config.eos_token_id
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        self.eos_ids: set[int] = set(eos if isinstance(eos, list) else [eos])

    def stream(self, requests: Sequence[Request], config: SamplingConfig) -> Iterator[Completion]:
        """Yield completions batch by batch; rows (one per sample) are sorted by prompt length so a
        batch pads little, and each batch is seeded from the run seed and its keys."""
        rows: list[tuple[str, int, list[int]]] = []
        for request in requests:
            text = render_prompt(request.messages, self.tokenizer, self.profile)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            rows.extend((request.problem_id, index, ids) for index in request.sample_indices)
        if self.sort_by_length:
            # Stable sort: equal lengths keep input order, so batches are deterministic.
            rows.sort(key=lambda row: len(row[2]))
        for start in range(0, len(rows), self.batch_size):
            yield from self._batch(rows[start:start + self.batch_size], config)

    def _batch(self, rows: list[tuple[str, int, list[int]]], config: SamplingConfig) -> list[Completion]:
        import torch
        from transformers import GenerationConfig

        seed = sample_seed(config.seed, *(f"{pid}/{i}" for pid, i, _ in rows))
        torch.manual_seed(seed)
        width = max(len(ids) for _, _, ids in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for _, _, ids in rows])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for _, _, ids in rows])
        sample = config.temperature > 0
        generation = GenerationConfig(
            do_sample=sample,
            temperature=config.temperature if sample else None,
            top_p=config.top_p if sample else None,
            top_k=None,
            max_new_tokens=config.max_new_tokens,
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=pad,
            stop_strings=config.stop or None,
        )
        extra: dict[str, Any] = {"tokenizer": self.tokenizer} if config.stop else {}
        recorder = LogprobRecorder(config.logprobs) if config.logprobs else None
        # The recorder goes first among the custom processors, so no other one has changed the logits it sees.
        processors = ([recorder] if recorder else []) + list(self.logits_processor or [])
        if processors:
            from transformers import LogitsProcessorList

            extra["logits_processor"] = LogitsProcessorList(processors)
        device = self.model.device
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                      generation_config=generation, **extra)
            if recorder is not None:
                recorder.finish(out)
        completions = []
        for row, (problem_id, index, ids) in enumerate(rows):
            generated = out[row, width:].tolist()
            finish, length = "length", len(generated)
            for position, token in enumerate(generated):
                if token in self.eos_ids:
                    finish, length = "stop", position + 1
                    break
            text = self.tokenizer.decode(generated[:length], skip_special_tokens=True)
            for stop in config.stop:
                if stop in text:
                    text, finish = text.split(stop, 1)[0], "stop"
            logprobs = recorder.row(row, generated[:length]) if recorder is not None else None
            completions.append(Completion(problem_id, index, text, finish, None, len(ids), length, seed,
                                          token_ids=generated[:length], prompt_token_ids=list(ids), logprobs=logprobs))
        return completions

    def close(self) -> None:
        """Drop the model so its memory can be freed."""
        self.model = None
