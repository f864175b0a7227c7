"""Sampling parameters and run budgets: small validated value objects, cheap to build per call
(the shape of vLLM's `SamplingParams`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from distill.errors import ConfigError
from distill.text import R1_MAX_NEW_TOKENS, R1_TEMPERATURE, R1_TOP_P


@dataclass
class SamplingConfig:
    """How to sample: `n` completions per problem with temperature, top-p, a token cap, a seed and stop strings.

    >>> SamplingConfig(n=4).temperature
    0.6
    >>> SamplingConfig(top_p=1.5)
    Traceback (most recent call last):
    ...
    distill.errors.ConfigError: top_p: expected a value in (0, 1], got 1.5
    """

    n: int = 1
    temperature: float = R1_TEMPERATURE
    top_p: float = R1_TOP_P
    max_new_tokens: int = R1_MAX_NEW_TOKENS
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    # Top-K teacher logprobs per generated token, stored beside the samples (None: none).
    logprobs: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"n: expected at least 1 sample per problem, got {self.n}")
        if self.temperature < 0:
            raise ConfigError(f"temperature: expected a value >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p: expected a value in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens: expected at least 1, got {self.max_new_tokens}")
        if any(not s for s in self.stop):
            raise ConfigError("stop: stop strings must not be empty")
        if self.logprobs is not None and self.logprobs < 1:
            raise ConfigError(f"logprobs: expected at least 1 alternative per token, got {self.logprobs}")

    def to_dict(self) -> dict[str, Any]:
        """A plain dict, as stored in manifests and in every sample's `sampling` field."""
        return asdict(self)

    def replace(self, **changes: Any) -> SamplingConfig:
        """A copy with some fields changed (None values are ignored), validated again."""
        data = self.to_dict()
        data.update({k: v for k, v in changes.items() if v is not None})
        return SamplingConfig(**data)


def sampling_identity(config: SamplingConfig | dict[str, Any]) -> dict[str, Any]:
    """The fields a resumed run must share with the run it continues (all but `n`, which may grow)."""
    data = config.to_dict() if isinstance(config, SamplingConfig) else dict(config)
    data.pop("n", None)
    return data


@dataclass
class Budget:
    """Limits that stop a run cleanly: samples written, tokens generated, money spent (USD)."""

    max_samples: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None

    def exceeded(self, samples: int, tokens: int, cost: float) -> str | None:
        """The name of the first limit reached, or None.

        >>> Budget(max_samples=2).exceeded(2, 0, 0.0)
        'max_samples'
        """
        if self.max_samples is not None and samples >= self.max_samples:
            return "max_samples"
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return "max_tokens"
        if self.max_cost is not None and cost >= self.max_cost:
            return "max_cost"
        return None
