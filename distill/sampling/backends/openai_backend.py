"""The `openai` backend: any OpenAI-compatible endpoint (DeepSeek's API, `vllm serve`, SGLang,
llama.cpp's server). Async with bounded concurrency; retries with exponential backoff and jitter
that honour `Retry-After`; fast failure on 400/401/403/404; round-robin over base URLs; the
answer split from `reasoning_content`/`reasoning`; servers that return fewer than `n` choices are
asked again for the rest. The API key is read from the environment and only ever sent in a header."""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import random
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from distill.errors import ConfigError, DistillError
from distill.sampling.backends.base import Completion, Request, sample_seed
from distill.sampling.config import SamplingConfig
from distill.sampling.profile import TeacherProfile

log = logging.getLogger(__name__)

RETRY_STATUSES = {408, 409, 429}
FATAL_STATUSES = {400, 401, 403, 404}
_DONE = object()


class RequestFailed(DistillError):
    """A request that must not be retried (400/401/403/404), or one that ran out of retries."""


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (numbers only; HTTP dates count as absent).

    >>> retry_after_seconds("2"), retry_after_seconds("0.5"), retry_after_seconds(None)
    (2.0, 0.5, None)
    """
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def server_message(response: Any) -> str:
    """The error message a server put in its body (OpenAI's `{"error": {"message": ...}}` or text)."""
    try:
        data = response.json()
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message", error) if isinstance(error, dict) else error
        return str(message)[:300]
    except ValueError:
        return response.text[:300]


class OpenAIBackend:
    """Samples through an OpenAI-compatible HTTP API; `requests_sent` counts HTTP attempts."""

    name = "openai"

    def __init__(self, profile: TeacherProfile) -> None:
        self.profile = profile
        self.api = profile.api
        self.urls = self.api.base_urls()
        if not self.urls:
            raise ConfigError("api.base_url: the openai backend needs a base URL (--base-url)")
        self._key = profile.api_key()  # kept in memory only; sent as a header, never logged
        self.path = "/chat/completions" if self.api.endpoint == "chat" else "/completions"
        self.tokenizer = None
        if self.api.endpoint == "completions":
            if not profile.tokenizer:
                raise ConfigError("tokenizer: the completions endpoint needs a local tokenizer to render prompts")
            from distill.sampling.backends.transformers_backend import load_tokenizer

            self.tokenizer = load_tokenizer(str(profile.resolve(profile.tokenizer)))
        self.requests_sent = 0
        self._next_url = itertools.cycle(self.urls)

    def stream(self, requests: Sequence[Request], config: SamplingConfig) -> Iterator[Completion]:
        """Run the requests on an event loop in a worker thread and yield completions as they arrive."""
        out: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        thread = threading.Thread(target=lambda: asyncio.run(self._run(list(requests), config, out, stop)),
                                  name="openai-backend", daemon=True)
        thread.start()
        try:
            while True:
                item = out.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join()

    async def _run(self, requests: list[Request], config: SamplingConfig, out: queue.Queue[Any],
                   stop: threading.Event) -> None:
        import httpx

        semaphore = asyncio.Semaphore(self.api.concurrency)
        limits = httpx.Limits(max_connections=self.api.concurrency, max_keepalive_connections=self.api.concurrency)
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(self.api.request_timeout), limits=limits) as client:
                tasks = [asyncio.create_task(self._one(client, semaphore, r, config, out)) for r in requests]
                pending = set(tasks)
                while pending:
                    done, pending = await asyncio.wait(pending, timeout=0.05, return_when=asyncio.FIRST_EXCEPTION)
                    failed = next((t for t in done if not t.cancelled() and t.exception() is not None), None)
                    if failed is not None or stop.is_set():
                        for task in pending:
                            task.cancel()
                        await asyncio.gather(*pending, return_exceptions=True)
                        if failed is not None:
                            out.put(failed.exception())
                        return
        except BaseException as err:  # surface any loop failure to the consuming thread
            out.put(err)
            return
        finally:
            out.put(_DONE)

    async def _one(self, client: Any, semaphore: asyncio.Semaphore, request: Request, config: SamplingConfig,
                   out: queue.Queue[Any]) -> None:
        missing = list(request.sample_indices)
        while missing:
            seed = sample_seed(config.seed, request.problem_id, missing[0])
            body = self._body(request, config, len(missing), seed)
            async with semaphore:
                data = await self._post(client, body)
            choices = sorted(data["choices"], key=lambda c: c.get("index", 0))[: len(missing)]
            usage = data.get("usage") or {}
            texts = [self._text(c) for c in choices]
            total_chars = sum(len(t) + len(r or "") for t, r in texts) or 1
            for position, (choice, (text, reasoning)) in enumerate(zip(choices, texts, strict=True)):
                tokens = usage.get("completion_tokens")
                if tokens is not None and len(choices) > 1:
                    # Usage is per response; split it over the choices by length.
                    tokens = round(tokens * (len(text) + len(reasoning or "")) / total_chars)
                out.put(Completion(request.problem_id, missing[position], text, choice.get("finish_reason"), reasoning,
                                   usage.get("prompt_tokens"), tokens, seed))
            if len(choices) < len(missing):
                log.info("%s: the server sent %d of %d choices; asking again for the rest", request.problem_id,
                         len(choices), len(missing))
            missing = missing[len(choices):]

    def _body(self, request: Request, config: SamplingConfig, n: int, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.profile.model, "n": n, "temperature": config.temperature,
                                "top_p": config.top_p, "max_tokens": config.max_new_tokens, "seed": seed}
        if config.stop:
            body["stop"] = list(config.stop)
        if self.tokenizer is not None:
            from distill.sampling.prompts import render_prompt

            body["prompt"] = render_prompt(request.messages, self.tokenizer, self.profile)
        else:
            body["messages"] = request.messages
        body.update(self.api.extra_body)
        return body

    def _text(self, choice: dict[str, Any]) -> tuple[str, str | None]:
        if "message" in choice:
            message = choice["message"] or {}
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            return message.get("content") or "", reasoning
        return choice.get("text") or "", None

    async def _post(self, client: Any, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        attempts = self.api.max_retries + 1
        for attempt in range(attempts):
            url = next(self._next_url) + self.path
            self.requests_sent += 1
            retry_after = None
            try:
                response = await client.post(url, json=body, headers=headers)
            except httpx.TransportError as err:  # connection refused/dropped, timeouts
                reason = f"{type(err).__name__}"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        data = response.json()
                        if isinstance(data, dict) and isinstance(data.get("choices"), list) and data["choices"]:
                            return data
                        reason = "a response without choices"
                    except ValueError:
                        reason = "malformed JSON in the response"
                elif status in FATAL_STATUSES or (400 <= status < 500 and status not in RETRY_STATUSES):
                    raise RequestFailed(f"{url}: HTTP {status}: {server_message(response)}")
                else:
                    reason = f"HTTP {status}"
                    retry_after = retry_after_seconds(response.headers.get("retry-after"))
            if attempt + 1 == attempts:
                raise RequestFailed(f"{url}: gave up after {attempts} attempts; the last failed with {reason}")
            delay = min(self.api.retry_max_delay, self.api.retry_base_delay * 2**attempt) * random.uniform(0.5, 1.0)
            if retry_after is not None:
                delay = max(delay, retry_after)
            log.warning("%s: %s; retrying in %.2fs (attempt %d of %d)", url, reason, delay, attempt + 2, attempts)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Nothing to release: each stream owns its client."""
