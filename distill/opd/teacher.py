"""The teacher of on-policy distillation: a local model, or a vLLM server that scores the student's tokens.

`--teacher` is a checkpoint folder, or a teacher profile (a shipped name or teachers/X.yaml): a
`transformers` profile is a local model; an `openai` profile pointing at `vllm serve` is a server. A server is
asked, per sequence, for the logprob of every prompt token by id (vLLM's `/v1/completions` with the ids as the
prompt and `prompt_logprobs: 0`); a server that does not answer that way (OpenAI's, DeepSeek's, a text-only
one) is refused in one line, since scores keyed by text cannot be aligned with the student's token ids.
Scores are untrusted input: each must be a finite logprob <= 0 keyed by the very id that was sent.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import ConfigError, DistillError
from distill.opd.recipe import ServerSettings
from distill.paths import find
from distill.sampling import TeacherProfile, resolve_teacher
from distill.sampling.backends.openai_backend import checked_key, endpoint_url
from distill.sampling.redact import SECRETS, redact_url

log = logging.getLogger(__name__)


@dataclass
class OPDTeacher:
    """A resolved teacher: a local checkpoint (`checkpoint`) or a scoring server (`server`), with the local
    tokenizer its ids are checked against."""

    name: str
    checkpoint: str | None = None
    server: ServerScorer | None = None
    tokenizer: str | None = None


def resolve_opd_teacher(value: str, settings: ServerSettings) -> OPDTeacher:
    """A checkpoint folder, or a profile: transformers (local), openai at a vLLM server; others are refused."""
    found = find(value)
    if found is not None and found.is_dir() and (found / "config.json").is_file():
        return OPDTeacher(name=found.name, checkpoint=str(found.resolve()), tokenizer=str(found.resolve()))
    profile: TeacherProfile = resolve_teacher(teacher=value)
    if profile.backend == "transformers":
        path = Path(profile.engine_model())
        if not (path / "config.json").is_file():
            raise ConfigError(f"--teacher {value}: {profile.model} is not a local checkpoint (the transformers backend "
                              "loads local paths)")
        return OPDTeacher(name=profile.public_id(), checkpoint=str(path), tokenizer=str(path))
    if profile.backend == "openai":
        if not profile.tokenizer:
            raise ConfigError(f"--teacher {value}: a served teacher needs the profile's `tokenizer:` (a local folder) "
                              "to check that it shares the student's vocabulary")
        tokenizer = profile.resolve(profile.tokenizer)
        return OPDTeacher(name=profile.public_id(), server=ServerScorer(profile, settings), tokenizer=str(tokenizer))
    raise ConfigError(f"--teacher {value}: backend {profile.backend} cannot score tokens for on-policy distillation; "
                      "serve the model with `vllm serve` and give an openai profile pointing at it, or a local checkpoint")


class ServerScorer:
    """Scores token sequences with a vLLM server's prompt logprobs (by token id)."""

    def __init__(self, profile: TeacherProfile, settings: ServerSettings) -> None:
        self.profile = profile
        self.settings = settings
        urls = profile.api.base_urls()
        if not urls:
            raise ConfigError("api.base_url: a served teacher needs a base URL")
        self.url = endpoint_url(urls[0], "/completions")
        self.shown = redact_url(urls[0])
        self._key = checked_key(profile)  # the openai backend's rules: keys only over https or to this machine
        self._client: Any = None

    def refuse(self, why: str) -> DistillError:
        """The one-line refusal of a server that cannot score tokens by id."""
        return DistillError(f"teacher server {self.shown}: {why}; on-policy distillation needs a vLLM server "
                            "(vllm serve) returning prompt logprobs by token id, or a local teacher")

    def score(self, sequences: list[list[int]], starts: list[int]) -> list[list[float]]:
        """For each sequence, the teacher's logprob of every token from `starts[i]` on (each given its prefix)."""
        out: list[list[float]] = []
        step = max(1, self.settings.sequences_per_request)
        for first in range(0, len(sequences), step):
            batch = sequences[first:first + step]
            data = self._post({"model": self.profile.model, "prompt": batch, "max_tokens": 1, "temperature": 1.0,
                               "prompt_logprobs": 0, "add_special_tokens": False, "n": 1})
            choices = data.get("choices") if isinstance(data, dict) else None
            if not isinstance(choices, list) or len(choices) != len(batch):
                raise self.refuse(f"expected {len(batch)} choices, got {type(choices).__name__}")
            by_index = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
            for ids, start, choice in zip(batch, starts[first:first + step], by_index, strict=True):
                out.append(self._parse(ids, start, choice))
        return out

    def _parse(self, ids: list[int], start: int, choice: Any) -> list[float]:
        entries = choice.get("prompt_logprobs") if isinstance(choice, dict) else None
        if not isinstance(entries, list) or len(entries) != len(ids):
            raise self.refuse("the response has no prompt_logprobs for the sequence sent")
        values = []
        for position in range(max(start, 1), len(ids)):
            entry = entries[position]
            scored = entry.get(str(ids[position])) if isinstance(entry, dict) else None
            value = scored.get("logprob") if isinstance(scored, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value > 1e-4:
                raise self.refuse(f"position {position}: no finite logprob keyed by the token id {ids[position]}")
            values.append(min(float(value), 0.0))
        return values

    def _post(self, body: dict[str, Any]) -> Any:
        """POST with retries on connection errors and 5xx/429; 4xx other than 429 is fatal."""
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.settings.timeout, follow_redirects=False)
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        reason = ""
        for attempt in range(self.settings.max_retries + 1):
            try:
                response = self._client.post(self.url, json=body, headers=headers)
            except httpx.HTTPError as err:
                reason = type(err).__name__
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise self.refuse("the response is not JSON") from None
                reason = f"HTTP {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    raise self.refuse(f"{reason}: {SECRETS.scrub(response.text[:200])}")
            if attempt < self.settings.max_retries:
                log.warning("teacher server %s: %s; retrying (%d of %d)", self.shown, reason, attempt + 1,
                            self.settings.max_retries)
                time.sleep(min(30.0, 2.0**attempt))
        raise DistillError(f"teacher server {self.shown}: gave up after {self.settings.max_retries + 1} attempts ({reason})")

    def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()
            self._client = None
