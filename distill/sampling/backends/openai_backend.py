"""The `openai` backend: any OpenAI-compatible endpoint (DeepSeek's API, `vllm serve`, SGLang,
llama.cpp's server). Async with bounded concurrency; retries with exponential backoff and jitter
that honour `Retry-After` (capped); a total deadline per request, body included; fast failure on
400/401/403/404; round-robin over base URLs; the answer split from `reasoning_content`/`reasoning`;
servers that return fewer than `n` choices are asked again for the rest. Responses are untrusted
(`openai_protocol`): a choice without text is retried, never stored. The API key is read from the
environment, sent only over https or to a loopback address, and masked in every log line."""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import random
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from distill.errors import ConfigError, DistillError
from distill.sampling.backends.base import Completion, Request, sample_seed
from distill.sampling.backends.openai_logprobs import parse_token_logprobs, prompt_token_ids, request_fields
from distill.sampling.backends.openai_protocol import (
    Choice,
    parse_choices,
    parse_usage,
    retry_after_seconds,
    server_message,
)
from distill.sampling.backends.transformers_backend import load_tokenizer
from distill.sampling.config import SamplingConfig
from distill.sampling.profile import DEFAULT_API_KEY_ENV, TeacherProfile
from distill.sampling.prompts import render_prompt
from distill.sampling.redact import SECRETS, guard_http_logs, may_carry_secrets, redact_url, url_secrets

log = logging.getLogger(__name__)

RETRY_STATUSES = {408, 409, 429}
FATAL_STATUSES = {400, 401, 403, 404}
_DONE = object()


class RequestFailed(DistillError):
    """A request that must not be retried (400/401/403/404), or one that ran out of retries.

    `lost` is how many requested samples of the stream were not received because of it; the
    completions received before it were all passed on first.
    """

    def __init__(self, reason: str, lost: int = 0, requested: int | None = None) -> None:
        self.reason = reason
        self.lost = lost
        message = reason
        if requested is not None:
            message = f"{reason}; {lost} of {requested} requested samples were not received because of this error"
        super().__init__(message)


def endpoint_url(base: str, path: str) -> str:
    """`path` appended to the base URL's path, its query (a `?key=` some servers want) kept after it.

    >>> endpoint_url("https://h/v1?key=k", "/chat/completions")
    'https://h/v1/chat/completions?key=k'
    """
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, parts.query, parts.fragment))


def checked_key(profile: TeacherProfile) -> str | None:
    """The profile's API key after checking, before any request, that its base URLs are http(s) and
    that no secret (the key, or credentials inside a URL) would travel in clear to another machine.
    Registers the secrets with the HTTP loggers' mask."""
    key = profile.api_key()
    if key is not None and not (key.isascii() and key.isprintable() and " " not in key):
        # Said without the key: a stray newline or space would otherwise fail every request obscurely.
        raise ConfigError(f"api.api_key_env: ${profile.api.api_key_env} holds whitespace or control characters, "
                          "which an HTTP header cannot carry")
    for url in profile.api.base_urls():
        shown = redact_url(url)
        try:
            scheme, host = urlsplit(url).scheme.lower(), urlsplit(url).hostname
        except ValueError:
            scheme, host = "", None
        if scheme not in ("http", "https") or not host:
            raise ConfigError(f"api.base_url {shown}: expected an http:// or https:// URL with a host")
        if key and not may_carry_secrets(url):
            raise ConfigError(f"api.base_url {shown}: refusing to send the API key from ${profile.api.api_key_env} "
                              "over plain http to a host that is not this machine; use https, or send no key "
                              f"(unset {profile.api.api_key_env}, or give --api-key-env '')")
        if url_secrets(url) and not may_carry_secrets(url):
            raise ConfigError(f"api.base_url {shown}: refusing to send the credentials in this URL over plain http "
                              "to a host that is not this machine; use https")
    guard_http_logs(key, *(s for url in profile.api.base_urls() for s in url_secrets(url)))
    return key


class OpenAIBackend:
    """Samples through an OpenAI-compatible HTTP API; `requests_sent` counts HTTP attempts."""

    name = "openai"

    def __init__(self, profile: TeacherProfile) -> None:
        self.profile = profile
        self.api = profile.api
        self.urls = self.api.base_urls()
        if not self.urls:
            raise ConfigError("api.base_url: the openai backend needs a base URL (--base-url)")
        self._key = checked_key(profile)  # kept in memory only; sent as a header, masked in logs
        if self.api.api_key_env == DEFAULT_API_KEY_ENV and self._key is None:
            log.warning("%s is not set: requests go without an API key (name another variable with "
                        "--api-key-env, or '' to silence this)", DEFAULT_API_KEY_ENV)
        for name in ("httpx", "httpcore"):
            # One INFO line per request from httpx would drown a long run; keep them unless the user
            # (or `distill --verbose`) has chosen a level for these loggers.
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)
        self.path = "/chat/completions" if self.api.endpoint == "chat" else "/completions"
        self.tokenizer = None
        if self.api.endpoint == "completions":
            if not profile.tokenizer:
                raise ConfigError("tokenizer: the completions endpoint needs a local tokenizer to render prompts")
            self.tokenizer = self._load_tokenizer()
        self.requests_sent = 0
        self._logprobs: int | None = None  # top-K asked of the server for the current stream
        self.retries: Counter[str] = Counter()
        self._said: set[str] = set()
        self._next_url = itertools.cycle(self.urls)

    def _load_tokenizer(self) -> Any:
        """The profile's tokenizer, from a local folder only: nothing is downloaded to render or count."""
        assert self.profile.tokenizer is not None
        path = self.profile.resolve(self.profile.tokenizer)
        if not path.is_dir():
            raise ConfigError(f"tokenizer: {self.profile.tokenizer} is not a local folder (the openai backend "
                              "never downloads a tokenizer)")
        return load_tokenizer(str(path))

    def _say_once(self, topic: str, message: str, *args: Any) -> None:
        """Log a warning the first time a topic comes up, and at DEBUG after that (one line, not one per request)."""
        level = logging.DEBUG if topic in self._said else logging.WARNING
        self._said.add(topic)
        log.log(level, message, *args)

    def stream(self, requests: Sequence[Request], config: SamplingConfig) -> Iterator[Completion]:
        """Run the requests on an event loop in a worker thread and yield completions as they arrive.

        On an error, every completion already received is yielded before the error is raised.
        """
        out: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        self._logprobs = config.logprobs
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
        requested = sum(len(r.sample_indices) for r in requests)
        delivered = [0]
        self.retries.clear()  # per stream, for the one-line retry summary at its end
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(self.api.request_timeout), limits=limits) as client:
                tasks = [asyncio.create_task(self._one(client, semaphore, r, config, out, delivered)) for r in requests]
                pending = set(tasks)
                while pending:
                    done, pending = await asyncio.wait(pending, timeout=0.05, return_when=asyncio.FIRST_EXCEPTION)
                    # Every exception is retrieved (asyncio logs the ones nobody looked at); the first is raised.
                    errors = [t.exception() for t in done if not t.cancelled() and t.exception() is not None]
                    if errors or stop.is_set():
                        for task in pending:
                            task.cancel()
                        await asyncio.gather(*pending, return_exceptions=True)
                        if errors:
                            error = errors[0]
                            if isinstance(error, RequestFailed):
                                error = RequestFailed(error.reason, requested - delivered[0], requested)
                            out.put(error)
                        return
        except BaseException as err:  # surface any loop failure to the consuming thread
            out.put(err)
            return
        finally:
            if self.retries:
                log.info("openai: %d HTTP attempts, %d retried (%s)", self.requests_sent, sum(self.retries.values()),
                         ", ".join(f"{reason} x{count}" for reason, count in self.retries.most_common()))
            out.put(_DONE)

    async def _one(self, client: Any, semaphore: asyncio.Semaphore, request: Request, config: SamplingConfig,
                   out: queue.Queue[Any], delivered: list[int]) -> None:
        """Get every wanted sample of one request; attempts that bring nothing usable count against max_retries."""
        missing = list(request.sample_indices)
        failures = 0
        while missing:
            seed = sample_seed(config.seed, request.problem_id, missing[0])
            body = self._body(request, config, len(missing), seed)
            async with semaphore:
                url, data, reason, retry_after = await self._attempt(client, body)
            if data is not None:
                choices, bad = parse_choices(data)
                choices = choices[: len(missing)]
                for completion in self._completions(request, missing, choices, data, seed):
                    out.put(completion)
                    delivered[0] += 1
                missing = missing[len(choices):]
                if not missing:
                    return
                if bad:
                    reason, kind = f"{len(bad)} unusable choice(s), e.g. {bad[0]}", bad[0]
                else:
                    self._say_once("fewer", "%s: the server sent %d of %d choices; asking again for the rest "
                                   "(logged once)", request.problem_id, len(choices), len(choices) + len(missing))
                    continue
            else:
                kind = reason
            assert reason is not None
            failures += 1
            if failures > self.api.max_retries:
                raise RequestFailed(f"{url}: gave up on {request.problem_id} after {failures} failed attempts "
                                    f"(api.max_retries is {self.api.max_retries}); the last failed with {reason}")
            self.retries[kind] += 1
            backoff = min(self.api.retry_max_delay, self.api.retry_base_delay * 2.0 ** min(failures - 1, 60))
            delay = backoff * random.uniform(0.5, 1.0)
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.api.retry_max_delay))
            self._say_once(f"retry:{kind}", "%s: %s; retrying in %.2fs (failure %d of at most %d for %s; "
                           "later ones of this kind are logged with --verbose)", url, reason, delay, failures,
                           self.api.max_retries + 1, request.problem_id)
            await asyncio.sleep(delay)

    def _completions(self, request: Request, missing: list[int], choices: list[Choice], data: dict[str, Any],
                     seed: int) -> Iterator[Completion]:
        """Completions for the first len(choices) missing indices, with token counts from `usage` or the tokenizer."""
        prompt_tokens, completion_tokens = parse_usage(data)
        total_chars = sum(len(c.text) + len(c.reasoning or "") for c in choices) or 1
        counter = None
        if completion_tokens is None and choices:
            counter = self._counting_tokenizer()
            if counter is not None and prompt_tokens is None:
                prompt_tokens = len(counter(render_prompt(request.messages, counter, self.profile),
                                            add_special_tokens=False)["input_ids"])
        for position, choice in enumerate(choices):
            tokens = completion_tokens
            if counter is not None:
                tokens = len(counter((choice.reasoning or "") + choice.text, add_special_tokens=False)["input_ids"])
            elif tokens is not None and len(choices) > 1:
                # Usage is per response; split it over the choices by length.
                tokens = round(tokens * (len(choice.text) + len(choice.reasoning or "")) / total_chars)
            completion = Completion(request.problem_id, missing[position], choice.text, choice.finish_reason,
                                    choice.reasoning, prompt_tokens, tokens, seed)
            if self._logprobs:
                # Token ids or nothing: a server that sends strings (or no logprobs) stops the run here.
                where = f"{redact_url(self.urls[0])}: {request.problem_id}"
                completion.logprobs = parse_token_logprobs(choice.raw, self.api.endpoint, self._logprobs, where)
                completion.token_ids = completion.logprobs.token_ids.tolist()
                completion.prompt_token_ids = prompt_token_ids(data, choice.raw, where)
                completion.completion_tokens = len(completion.token_ids)
                completion.prompt_tokens = len(completion.prompt_token_ids)
            yield completion

    def _counting_tokenizer(self) -> Any:
        """The tokenizer that counts tokens when the server sends no usage (None without `tokenizer:`)."""
        if self.profile.tokenizer:
            self._say_once("usage", "%s: the server sent no token usage; counting tokens with the profile's "
                           "tokenizer %s", redact_url(self.urls[0]), self.profile.tokenizer)
            if self.tokenizer is None:
                self.tokenizer = self._load_tokenizer()
            return self.tokenizer
        self._say_once("usage", "%s: the server sent no token usage and the profile has no tokenizer: "
                       "completion_tokens are recorded as null", redact_url(self.urls[0]))
        return None

    def _body(self, request: Request, config: SamplingConfig, n: int, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.profile.model, "n": n, "temperature": config.temperature,
                                "top_p": config.top_p, "max_tokens": config.max_new_tokens, "seed": seed}
        if config.stop:
            body["stop"] = list(config.stop)
        if config.logprobs:
            body.update(request_fields(self.api.endpoint, config.logprobs))
        if self.api.endpoint == "completions":
            body["prompt"] = render_prompt(request.messages, self.tokenizer, self.profile)
        else:
            body["messages"] = request.messages
        body.update(self.api.extra_body)
        return body

    async def _attempt(self, client: Any, body: dict[str, Any]) -> tuple[str, Any, str | None, float | None]:
        """One HTTP attempt: `(shown_url, data, None, None)` on a 200 with JSON, else `(shown_url, None,
        reason, retry_after)` for a retriable failure; raises RequestFailed on a fatal status."""
        import httpx

        base = next(self._next_url)
        url, shown = endpoint_url(base, self.path), redact_url(base)
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self.requests_sent += 1
        try:
            # httpx's timeout is per read; the deadline bounds the whole exchange, so a server that
            # trickles its body cannot hold a slot forever.
            response = await asyncio.wait_for(client.post(url, json=body, headers=headers), self.api.deadline)
        except TimeoutError:
            return shown, None, f"no complete response within the request deadline ({self.api.deadline:g}s)", None
        except httpx.RequestError as err:  # connection refused/dropped, per-read timeouts, bad encodings
            return shown, None, type(err).__name__, None
        try:
            data = response.json()
        except (ValueError, RecursionError):
            data = None
        status = response.status_code
        if status == 200:
            return (shown, data, None, None) if data is not None else (shown, None, "malformed JSON in the response", None)
        if 300 <= status < 400:
            # Not followed: a redirect must not take the key to another host, and a retry gets the same answer.
            raise RequestFailed(f"{shown}: HTTP {status}: the server redirects; give the URL it redirects to "
                                "as the base URL")
        if status in FATAL_STATUSES or (400 <= status < 500 and status not in RETRY_STATUSES):
            message = SECRETS.scrub(server_message(response.text if data is None else "", data))
            raise RequestFailed(f"{shown}: HTTP {status}: {message}")
        return shown, None, f"HTTP {status}", retry_after_seconds(response.headers.get("retry-after"))

    def close(self) -> None:
        """Nothing to release: each stream owns its client."""
