"""Teacher profiles (`teachers/*.yaml`): which model, through which backend, with which prompt quirks
and sampling defaults. Secrets never live here: a profile names the environment variable that
holds an API key, never the key itself."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from distill.config import from_mapping, read_yaml
from distill.errors import ConfigError
from distill.problems import MATH_PROMPT_SUFFIX
from distill.sampling.config import R1_MAX_NEW_TOKENS, R1_TEMPERATURE, R1_TOP_P, SamplingConfig

Backend = Literal["transformers", "vllm", "openai"]
BACKENDS = ("transformers", "vllm", "openai")


@dataclass
class ApiOptions:
    """For the `openai` backend: endpoints, key, concurrency, retries and prices."""

    base_url: str | list[str] | None = None
    api_key_env: str | None = None
    endpoint: Literal["chat", "completions"] = "chat"
    concurrency: int = 16
    request_timeout: float = 1800.0
    max_retries: int = 8
    retry_base_delay: float = 1.0
    retry_max_delay: float = 120.0
    # USD per million tokens, for the cost cap of paid APIs.
    price_input_per_million: float | None = None
    price_output_per_million: float | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)

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

    def __post_init__(self) -> None:
        if self.backend == "openai" and not self.api.base_urls():
            raise ConfigError("api.base_url: the openai backend needs a base URL")

    def to_dict(self) -> dict[str, Any]:
        """The profile as stored in a run manifest: no secrets (only the key's variable name)."""
        data = asdict(self)
        data.pop("root", None)
        return data

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share: model, backend and prompt format (not concurrency or prices)."""
        data = self.to_dict()
        return {k: data[k] for k in ("model", "backend", "open_think", "answer_format", "system_prompt",
                                     "math_prompt_suffix", "prompt_template")}

    def resolve(self, path: str) -> Path:
        """A path from the profile, relative to the profile's folder when it is not absolute."""
        p = Path(path)
        if p.is_absolute() or self.root is None:
            return p
        candidate = Path(self.root) / p
        return candidate if candidate.exists() or not p.exists() else p

    def api_key(self) -> str | None:
        """The API key from the environment variable the profile names (None when it names none)."""
        if not self.api.api_key_env:
            return None
        key = os.environ.get(self.api.api_key_env)
        if not key:
            raise ConfigError(f"api.api_key_env: the environment variable {self.api.api_key_env} is not set")
        return key


def load_profile(path: str | Path, overrides: dict[str, Any] | None = None) -> TeacherProfile:
    """Load a teacher profile from YAML; a wrong key or value fails naming the file and key."""
    path = Path(path)
    data = read_yaml(path)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if "api_key" in data or "api_key" in (data.get("api") or {}):
        raise ConfigError(f"{path}: key 'api_key': keys do not belong in profiles; name an environment "
                          "variable with api.api_key_env instead")
    data.setdefault("name", path.stem)
    data["root"] = str(path.resolve().parent)
    for key in ("model", "tokenizer"):
        if isinstance(data.get(key), str):
            data[key] = _local_path(data[key], path.resolve().parent)
    return from_mapping(TeacherProfile, data, str(path))


def _local_path(value: str, root: Path) -> str:
    """A relative local path in a profile, found from the working directory, the profile's folder or
    the folder above it (repository-relative paths such as `teachers/tiny`); hub ids stay as they are."""
    if Path(value).is_absolute():
        return value
    for base in (Path.cwd(), root, root.parent):
        if (base / value).exists():
            return str((base / value).resolve())
    return value


def profile_for_model(path: str, backend: str = "transformers", base_url: str | None = None) -> TeacherProfile:
    """A profile for a checkpoint without a YAML file: sampling defaults from its generation config.

    Temperature and top-p come from `generation_config.json` when it has them, else R1's defaults.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend}: expected one of {', '.join(BACKENDS)}")
    sampling = SamplingConfig()
    config_file = Path(path) / "generation_config.json"
    if config_file.exists():
        generation = json.loads(config_file.read_text())
        sampling = sampling.replace(temperature=generation.get("temperature"), top_p=generation.get("top_p"))
    api = ApiOptions(base_url=base_url) if base_url else ApiOptions()
    name = Path(path).name if Path(path).exists() else path
    try:
        return TeacherProfile(name=name, model=path, backend=backend, sampling=sampling, api=api)  # type: ignore[arg-type]
    except ConfigError as err:
        raise ConfigError(f"--model {path}: {err}") from err
