"""Tiny random Qwen2- or Llama-architecture models for tests, the quickstart and the toy teacher."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from distill.text import R1_TEMPERATURE, R1_TOP_P
from distill.toy.tokenizer import build_tokenizer

if TYPE_CHECKING:  # torch and transformers load when a model is built, not on import
    from transformers import GenerationConfig, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast

Architecture = Literal["qwen2", "llama"]


def tiny_config(
    tokenizer: PreTrainedTokenizerFast,
    architecture: Architecture = "qwen2",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    num_kv_heads: int = 1,
    max_positions: int = 2048,
) -> PretrainedConfig:
    """A small config whose vocabulary and special ids match `tokenizer`.

    The default head size is 32 (64 wide over 2 heads): vLLM's CPU attention runs 32 or 64, not 16 or 24.
    """
    from transformers import LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    if architecture == "qwen2":
        return Qwen2Config(**common)
    if architecture == "llama":
        return LlamaConfig(**common)
    raise ValueError(f"unknown architecture {architecture!r} (expected qwen2 or llama)")


def r1_generation_config(tokenizer: PreTrainedTokenizerFast, max_new_tokens: int = 512) -> GenerationConfig:
    """A generation config with R1's sampling defaults and the tokenizer's EOS and pad ids."""
    from transformers import GenerationConfig

    return GenerationConfig(
        do_sample=True,
        temperature=R1_TEMPERATURE,
        top_p=R1_TOP_P,
        max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def make_tiny_model(
    tokenizer: PreTrainedTokenizerFast | None = None,
    architecture: Architecture = "qwen2",
    seed: int = 0,
    **sizes: int,
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A randomly initialised tiny causal LM (seeded) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = tokenizer or build_tokenizer()
    config = tiny_config(tokenizer, architecture, **sizes)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = r1_generation_config(tokenizer)
    return model, tokenizer


def save_tiny_model(out: str | Path, architecture: Architecture = "qwen2", seed: int = 0, **sizes: int) -> Path:
    """Build and save a tiny random model with its tokenizer and chat template (safetensors)."""
    model, tokenizer = make_tiny_model(architecture=architecture, seed=seed, **sizes)
    out = Path(out)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out
