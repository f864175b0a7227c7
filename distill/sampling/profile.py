"""Teacher profiles (`teachers/*.yaml`): which model, through which backend, with which prompt quirks
and sampling defaults. Secrets never live here: a profile names the environment variable that
holds an API key, never the key itself."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from distill.config import apply_settings, from_mapping, read_yaml
from distill.errors import ConfigError
from distill.paths import find, resolve
from distill.sampling.config import SamplingConfig
from distill.sampling.redact import redact_url
from distill.text import MATH_PROMPT_SUFFIX, R1_MAX_NEW_TOKENS, R1_TEMPERATURE, R1_TOP_P

Backend = Literal["transformers", "vllm", "openai"]
BACKENDS = ("transformers", "vllm", "openai")
# The variable the openai client reads by default; the key convention for runs without a profile.
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


@dataclass
class ApiOptions:
    """For the `openai` backend: endpoints, key, concurrency, retries, deadlines and prices.

    >>> ApiOptions(concurrency=0)
    Traceback (most recent call last):
    ...
    distill.errors.ConfigError: concurrency: expected at least 1 request in flight, got 0
    """

    base_url: str | list[str] | None = None
    # The environment variable holding the key ("" or None: send no key).
    api_key_env: str | None = None
    endpoint: Literal["chat", "completions"] = "chat"
    concurrency: int = 16
    # Seconds without a byte before a connect or read gives up (httpx's per-operation timeout).
    request_timeout: float = 1800.0
    # Seconds for a whole request, body included, before it is abandoned and retried (None: request_timeout).
    request_deadline: float | None = None
    max_retries: int = 8
    retry_base_delay: float = 1.0
    retry_max_delay: float = 120.0
    # USD per million tokens, for the cost cap of paid APIs.
    price_input_per_million: float | None = None
    price_output_per_million: float | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Checked here so a bad profile fails when it loads, not as a hang (concurrency 0) or a crash.
        if self.concurrency < 1:
            raise ConfigError(f"concurrency: expected at least 1 request in flight, got {self.concurrency}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries: expected 0 or more, got {self.max_retries}")
        for key in ("request_timeout", "request_deadline"):
            value = getattr(self, key)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{key}: expected a positive number of seconds, got {value}")
        for key in ("retry_base_delay", "retry_max_delay", "price_input_per_million", "price_output_per_million"):
            value = getattr(self, key)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{key}: expected a finite number >= 0, got {value}")

    @property
    def deadline(self) -> float:
        """The total seconds one request may take, body included."""
        return self.request_deadline if self.request_deadline is not None else self.request_timeout

    def has_prices(self) -> bool:
        """Whether both token prices are set, so a cost can be computed."""
        return self.price_input_per_million is not None and self.price_output_per_million is not None

    def base_urls(self) -> list[str]:
        """The base URLs as a list (one URL or several shared round-robin)."""
        if self.base_url is None:
            return []
        urls = [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)
        return [u.rstrip("/") for u in urls]


@dataclass
class VllmOptions:
    """For the `vllm` backend: parallelism, memory and engine settings (vLLM's names; None: vLLM's default)."""

    tensor_parallel_size: int = 1
    # One engine per process: run one `distill generate --shard I/N` per data-parallel rank.
    data_parallel_size: int = 1
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    dtype: str = "auto"
    enable_prefix_caching: bool = True
    # Eager PyTorch instead of compiled graphs: slower steps, a start-up shorter by the compile time.
    enforce_eager: bool = False
    # The most logprobs per token the engine returns (vLLM's default, 20); SamplingConfig.logprobs must fit.
    max_logprobs: int = 20
    block_size: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    # None: vLLM's default on GPUs, off on CPU (where seeded samples need it off).
    enable_chunked_prefill: bool | None = None
    # The engine's counters (prefix-cache hits, throughput logs); they cost the driving process time per token.
    log_stats: bool = False


@dataclass
class LocalOptions:
    """For the `transformers` backend: batch size, dtype and device."""

    batch_size: int = 16
    dtype: str = "float32"
    device: str = "cpu"
    sort_by_length: bool = True


@dataclass
class TeacherProfile:
    """A teacher: model, backend, prompt format, where the answer sits, and sampling defaults."""

    name: str
    model: str
    backend: Backend = "transformers"
    # Whether the generation prompt opens `<think>\n` (R1-distill templates do it themselves).
    open_think: bool = True
    answer_format: Literal["after_think", "answer_tags"] = "after_think"
    system_prompt: str | None = None
    math_prompt_suffix: str = MATH_PROMPT_SUFFIX
    # A file with a prompt template holding `{prompt}` (and optionally `{suffix}`), relative to the profile.
    prompt_template: str | None = None
    # A local tokenizer for the `openai` backend's `completions` endpoint (to render the chat template).
    tokenizer: str | None = None
    sampling: SamplingConfig = field(
        default_factory=lambda: SamplingConfig(temperature=R1_TEMPERATURE, top_p=R1_TOP_P, max_new_tokens=R1_MAX_NEW_TOKENS)
    )
    api: ApiOptions = field(default_factory=ApiOptions)
    vllm: VllmOptions = field(default_factory=VllmOptions)
    local: LocalOptions = field(default_factory=LocalOptions)
    # The folder of the YAML file, to resolve relative paths (not part of the identity).
    root: str | None = None
    # The local checkpoint `model` names, found by the loader (local-only: never in published artifacts).
    model_path: str | None = None

    def __post_init__(self) -> None:
        if self.backend == "openai" and not self.api.base_urls():
            raise ConfigError("api.base_url: the openai backend needs a base URL")

    def to_dict(self) -> dict[str, Any]:
        """The profile as runs and published artifacts record it: no secrets (only the key's variable name,
        redacted URLs) and no local paths (a local checkpoint is named by its public id, see `public_id`)."""
        data = asdict(self)
        data.pop("root", None)
        data.pop("model_path", None)
        data["model"] = self.public_id()
        base_url = data["api"]["base_url"]
        if base_url is not None:
            data["api"]["base_url"] = redact_url(base_url) if isinstance(base_url, str) else [redact_url(u) for u in base_url]
        return data

    def public_id(self) -> str:
        """How artifacts name this teacher: the model id (a hub id, an API model name), or the profile's
        name when the model is a local checkpoint, whose path stays on this machine."""
        return self.name if self.model_path is not None else self.model

    def engine_model(self) -> str:
        """What a backend loads: the local checkpoint's absolute path, else the model id."""
        return self.model_path or self.model

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share: model (and the local checkpoint's fingerprint), backend and prompt
        format (not concurrency or prices)."""
        data = self.to_dict()
        identity = {k: data[k] for k in ("model", "backend", "open_think", "answer_format", "system_prompt",
                                         "math_prompt_suffix", "prompt_template")}
        if self.model_path is not None:
            identity["checkpoint"] = checkpoint_fingerprint(self.model_path)
        return identity

    def local_fields(self) -> dict[str, Any]:
        """What only this machine needs (the manifest's local-only `local` group): the checkpoint's path."""
        return {"teacher_model_path": self.model_path} if self.model_path else {}

    def resolve(self, path: str) -> Path:
        """A file the profile names (a prompt template, a tokenizer), by the one search order of
        `distill.paths.find` starting at the profile's folder."""
        return find(path, relative_to=self.root) or Path(path)

    def api_key(self) -> str | None:
        """The API key from the environment variable the profile names (None when it names none).

        An unset `OPENAI_API_KEY` (the convention's default) means no key, as for a local server; any
        other variable the user named must be set.
        """
        name = self.api.api_key_env
        if not name:
            return None
        key = os.environ.get(name)
        if not key and name == DEFAULT_API_KEY_ENV:
            return None
        if not key:
            raise ConfigError(f"api.api_key_env: the environment variable {name} is not set")
        return key


def checkpoint_fingerprint(path: str | Path) -> str:
    """A cheap fingerprint of a local checkpoint: its config and the names and sizes of its files."""
    folder = Path(path)
    digest = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for item in sorted(folder.iterdir()) if folder.is_dir() else []:
        if item.is_file():
            digest.update(f"{item.name}:{item.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def _build(data: dict[str, Any], where: str, settings: list[str] | None) -> TeacherProfile:
    """A profile from a mapping plus `--set`-style settings; the local checkpoint is found after settings."""
    apply_settings(data, settings)
    if "api_key" in data or "api_key" in (data.get("api") or {}):
        raise ConfigError(f"{where}: key 'api_key': keys do not belong in profiles; name an environment "
                          "variable with api.api_key_env instead")
    if "model_path" in data:
        raise ConfigError(f"{where}: key 'model_path' is found by the loader; name the checkpoint with 'model'")
    model = data.get("model")
    if isinstance(model, str) and data.get("backend", "transformers") != "openai":
        found = find(model, relative_to=data.get("root"))
        if found is not None and found.is_dir():
            data["model_path"] = str(found.resolve())
    return from_mapping(TeacherProfile, data, where)


def load_profile(path: str | Path, settings: list[str] | None = None) -> TeacherProfile:
    """Load a teacher profile from YAML, then apply `KEY=VALUE` settings (`backend=vllm`,
    `api.base_url=...`); a wrong key or value fails naming the file and key."""
    path = Path(path)
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    data["root"] = str(path.resolve().parent)
    return _build(data, str(path), settings)


def profile_for_model(path: str, backend: str = "transformers", base_url: str | None = None,
                      api_key_env: str | None = None, settings: list[str] | None = None) -> TeacherProfile:
    """A profile for a checkpoint or model id without a YAML file: sampling defaults from its generation
    config (temperature and top-p when it has them, else R1's). With the openai backend the key is read
    from `api_key_env`, by default `OPENAI_API_KEY` (as the openai client does; "" sends no key)."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend}: expected one of {', '.join(BACKENDS)}")
    sampling = SamplingConfig()
    config_file = Path(path) / "generation_config.json"
    if config_file.exists():
        generation = json.loads(config_file.read_text())
        sampling = sampling.replace(temperature=generation.get("temperature"), top_p=generation.get("top_p"))
    data: dict[str, Any] = {"name": Path(path).name if Path(path).exists() else path, "model": path,
                            "backend": backend, "sampling": asdict(sampling)}
    if backend == "openai":
        data["api"] = {"base_url": base_url, "api_key_env": DEFAULT_API_KEY_ENV if api_key_env is None else api_key_env}
    elif base_url:
        data["api"] = {"base_url": base_url}
    return _build(data, f"--model {path}", settings)


def resolve_teacher(teacher: str | None = None, model: str | None = None, backend: str | None = None,
                    base_url: str | None = None, settings: list[str] | None = None,
                    api_key_env: str | None = None) -> TeacherProfile:
    """The one way to get a teacher profile: `teacher` is a shipped name (`tiny`) or a profile path
    (`teachers/tiny.yaml`); without one, `model` (a checkpoint or model id) with `backend`. `model`,
    `backend`, `base_url` and `api_key_env` given beside a profile override its values, as do `settings`."""
    if teacher is None and model is None:
        raise ConfigError("give a teacher profile (--teacher NAME|teachers/X.yaml) or a model (--model PATH --backend B)")
    extra = list(settings or [])
    if teacher is None:
        assert model is not None
        return profile_for_model(model, backend or "transformers", base_url, api_key_env, extra)
    if model is not None:
        extra.insert(0, f"model={json.dumps(model)}")
    if backend is not None:
        extra.insert(0, f"backend={backend}")
    if base_url is not None:
        extra.insert(0, f"api.base_url={json.dumps(base_url)}")
    if api_key_env is not None:
        extra.insert(0, f"api.api_key_env={json.dumps(api_key_env)}")
    return load_profile(resolve(teacher, kind="teacher", what="teacher profile"), extra)
