"""Model shapes for the planner: the sizes that decide memory and FLOPs, read from a local config.json or,
for the hub bases of the shipped recipes, from a small table (nothing is downloaded).

Parameter counts follow the decoder layers of transformers' Qwen2 and Llama classes exactly: q/k/v/o
projections (Qwen2 has q/k/v biases), a SwiGLU MLP (gate, up, down), two RMSNorms per layer, the final
norm, the embedding and an untied or tied LM head.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import ConfigError

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer (Qwen2/Llama layout)."""

    name: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tied_embeddings: bool = False
    qkv_bias: bool = False  # Qwen2 has biases on q, k and v

    @property
    def kv_dim(self) -> int:
        """Width of the key (and value) projection: kv heads x head dim."""
        return self.num_kv_heads * self.head_dim

    def linear_sizes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer."""
        h, q, kv, f = self.hidden_size, self.num_heads * self.head_dim, self.kv_dim, self.intermediate_size
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, f), "up_proj": (h, f), "down_proj": (f, h)}

    def layer_params(self) -> int:
        """Parameters of one decoder layer: linears, q/k/v biases, two RMSNorm weights."""
        q, kv = self.num_heads * self.head_dim, self.kv_dim
        bias = q + 2 * kv if self.qkv_bias else 0
        return sum(i * o for i, o in self.linear_sizes().values()) + bias + 2 * self.hidden_size

    def embedding_params(self) -> int:
        """Input embedding parameters."""
        return self.vocab_size * self.hidden_size

    def head_params(self) -> int:
        """LM head parameters (0 when tied to the embedding)."""
        return 0 if self.tied_embeddings else self.vocab_size * self.hidden_size

    def total_params(self) -> int:
        """All parameters.

        >>> KNOWN_SHAPES["meta-llama/Llama-3.1-8B"].total_params()
        8030261248
        """
        return self.embedding_params() + self.head_params() + self.num_layers * self.layer_params() + self.hidden_size

    def linear_params(self) -> int:
        """Parameters of the decoder layers' linear weights (what NF4 quantizes; LoRA's all-linear targets)."""
        return self.num_layers * sum(i * o for i, o in self.linear_sizes().values())

    def matmul_params(self) -> int:
        """Parameters that take part in a matmul per token (the linears and the LM head; not the lookup)."""
        return self.linear_params() + self.vocab_size * self.hidden_size

    def lora_params(self, r: int, targets: str | list[str] = "all-linear") -> int:
        """Trainable parameters of rank-r LoRA adapters on the targeted linears (peft's all-linear: every linear
        of the decoder layers, not the LM head).

        >>> KNOWN_SHAPES["meta-llama/Llama-3.1-8B"].lora_params(8, ["q_proj", "v_proj"])
        3407872
        """
        names = LINEARS if targets == "all-linear" else [t for t in targets if t in LINEARS]
        if targets != "all-linear" and len(names) != len(targets):
            unknown = sorted(set(targets) - set(LINEARS))
            raise ConfigError(f"lora.target_modules: the planner knows {', '.join(LINEARS)}, not {unknown}")
        sizes = self.linear_sizes()
        return self.num_layers * sum(r * (sizes[n][0] + sizes[n][1]) for n in names)

    def with_layers(self, num_layers: int) -> ModelShape:
        """The same shape with fewer (or more) decoder layers (the validation builds reduced models)."""
        return dataclasses.replace(self, num_layers=num_layers, name=f"{self.name} ({num_layers} layers)")


def _qwen(name: str, vocab: int, h: int, f: int, layers: int, heads: int, kv: int, tied: bool) -> ModelShape:
    return ModelShape(name, vocab, h, f, layers, heads, kv, h // heads, tied_embeddings=tied, qkv_bias=True)


def _llama(name: str, vocab: int, h: int, f: int, layers: int, heads: int, kv: int) -> ModelShape:
    return ModelShape(name, vocab, h, f, layers, heads, kv, h // heads)


# The config.json values of the shipped recipes' bases (their hub model cards), so that `distill plan`
# works offline. Qwen2.5-Math-1.5B ties its embeddings; the others do not.
KNOWN_SHAPES: dict[str, ModelShape] = {
    "Qwen/Qwen2.5-Math-1.5B": _qwen("Qwen2.5-Math-1.5B", 151936, 1536, 8960, 28, 12, 2, tied=True),
    "Qwen/Qwen2.5-Math-7B": _qwen("Qwen2.5-Math-7B", 152064, 3584, 18944, 28, 28, 4, tied=False),
    "Qwen/Qwen2.5-14B": _qwen("Qwen2.5-14B", 152064, 5120, 13824, 48, 40, 8, tied=False),
    "Qwen/Qwen2.5-32B": _qwen("Qwen2.5-32B", 152064, 5120, 27648, 64, 40, 8, tied=False),
    "meta-llama/Llama-3.1-8B": _llama("Llama-3.1-8B", 128256, 4096, 14336, 32, 32, 8),
    "meta-llama/Llama-3.3-70B-Instruct": _llama("Llama-3.3-70B-Instruct", 128256, 8192, 28672, 80, 64, 8),
}
# R1's distilled checkpoints keep their bases' shapes (GRPO and opd start from them).
KNOWN_SHAPES["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"] = KNOWN_SHAPES["Qwen/Qwen2.5-Math-1.5B"]
KNOWN_SHAPES["deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"] = KNOWN_SHAPES["Qwen/Qwen2.5-Math-7B"]


def shape_from_config(config: dict[str, Any], name: str = "model") -> ModelShape:
    """A shape from a transformers config mapping (Qwen2, Llama and configs with the same keys).

    >>> shape_from_config({"vocab_size": 100, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    ...                    "num_attention_heads": 4, "num_key_value_heads": 2, "model_type": "qwen2"}).total_params()
    87104

    (2 x 6,400 for the embedding and the untied head, 2 x 37,120 per layer, 64 for the final norm.)
    """
    text = config.get("text_config", config)
    try:
        heads = int(text["num_attention_heads"])
        shape = ModelShape(
            name=name,
            vocab_size=int(text["vocab_size"]),
            hidden_size=int(text["hidden_size"]),
            intermediate_size=int(text["intermediate_size"]),
            num_layers=int(text["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(text.get("num_key_value_heads") or heads),
            head_dim=int(text.get("head_dim") or int(text["hidden_size"]) // heads),
            tied_embeddings=bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
            qkv_bias=text.get("model_type", config.get("model_type")) == "qwen2" or bool(text.get("attention_bias")),
        )
    except KeyError as err:
        raise ConfigError(f"{name}: config.json has no {err.args[0]!r}; the planner needs a decoder config") from err
    return shape


def load_shape(model: str, base_dir: Path | None = None) -> ModelShape:
    """The shape of a checkpoint directory (its config.json) or a hub id from `KNOWN_SHAPES`; anything else is a
    ConfigError that names the model (the planner never downloads)."""
    path = Path(model)
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    config = path / "config.json"
    if config.is_file():
        return shape_from_config(json.loads(config.read_text(encoding="utf-8")), str(path))
    if model in KNOWN_SHAPES:
        return KNOWN_SHAPES[model]
    raise ConfigError(
        f"{model}: no local config.json and not a known hub base ({', '.join(sorted(KNOWN_SHAPES))}); "
        "point the recipe at a local checkpoint to plan it"
    )
