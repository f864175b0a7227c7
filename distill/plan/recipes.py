"""Workloads and setups from the project's recipes: a student recipe (`distill train`), a GRPO recipe
(`distill reinforce`, with its reference model and rollout engine), and a student with a teacher
(`distill opd`: `opd_workload(student, teacher, served=...)`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from distill.plan.shapes import ModelShape, load_shape
from distill.plan.workload import FrozenModel, Setup, Strategy, TrainedModel, Workload
from distill.toy.tokenizer import build_tokenizer

if TYPE_CHECKING:
    from distill.reinforce.recipe import GRPORecipe
    from distill.train.recipe import StudentRecipe

STRATEGIES: dict[str, Strategy] = {"ddp": "ddp", "fsdp": "fsdp", "deepspeed": "zero3"}


@functools.lru_cache(maxsize=1)
def _toy_vocab_size() -> int:

    return len(build_tokenizer())


def student_shape(recipe: StudentRecipe) -> ModelShape:
    """The student's shape: the `tiny:` group for `model: tiny`, a local config.json, or a known hub base."""
    if recipe.model == "tiny":
        t = recipe.tiny
        return ModelShape("tiny", _toy_vocab_size(), t.hidden_size, 4 * t.hidden_size, t.num_layers, t.num_heads,
                          t.num_kv_heads, t.hidden_size // t.num_heads, tied_embeddings=True,
                          qkv_bias=t.architecture == "qwen2")
    base = Path(recipe.path).parent if recipe.path else None
    return load_shape(recipe.model, base)


@functools.lru_cache(maxsize=1)
def trl_fuses_sft_loss() -> bool:
    """Whether the installed TRL's SFTTrainer computes the loss with its chunked LM head (TRL >= 1.x), so
    the full logits are never built."""
    import importlib.metadata

    try:  # read the installed files rather than import TRL (seconds, and it pulls in peft and bitsandbytes)
        files = importlib.metadata.files("trl") or []
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(str(f).replace("\\", "/") == "trl/kernels/chunked_logprob.py" for f in files)


def student_workload(recipe: StudentRecipe, seq_len: int | None = None) -> Workload:
    """One GPU's micro-step of SFT under a student recipe (packed rows of max_length tokens)."""
    targets = recipe.lora.target_modules
    student = TrainedModel(
        student_shape(recipe), mode=recipe.mode, dtype=recipe.dtype, bf16=recipe.bf16, lora_r=recipe.lora.r,
        lora_targets=targets if isinstance(targets, str) else tuple(targets), lora_dropout=recipe.lora.dropout,
    )
    return Workload(student, seq_len=seq_len or recipe.max_length, micro_batch=recipe.per_device_train_batch_size,
                    name=recipe.name)


def recipe_setup(recipe: StudentRecipe, gpus_per_node: int, nodes: int, gpu_memory_gib: float,
                 device: str = "cuda") -> Setup:
    """The recipe's own way of running (sharding, checkpointing, attention, packing) on the given GPUs."""
    return Setup(
        gpus_per_node=gpus_per_node, nodes=nodes, gpu_memory_gib=gpu_memory_gib,
        strategy=STRATEGIES[recipe.distributed], checkpointing=recipe.gradient_checkpointing,
        fused_loss=trl_fuses_sft_loss(), attention=recipe.attn_implementation,
        cp_size=recipe.context_parallel_size, device="cuda" if device == "cuda" else "cpu", packing=recipe.packing,
    )


def grpo_workload(recipe: GRPORecipe, shape: ModelShape, prompt_tokens: int = 512,
                  gpu_memory_gib: float = 80.0) -> Workload:
    """One GPU's GRPO micro-step: the policy on per_device_train_batch_size completions of prompt +
    max_completion_length tokens, a frozen reference copy when beta > 0, and the rollout engine: vLLM's
    reserved share of the GPU, or transformers' KV cache for the completions it generates."""
    g = recipe.grpo
    dtype = "bfloat16" if recipe.dtype == "auto" else recipe.dtype  # "auto": the checkpoint's, bf16 for R1's bases
    student = TrainedModel(shape, mode="full", dtype=dtype, bf16=g.bf16)
    frozen = (FrozenModel(shape, "reference", dtype),) if g.beta > 0 else ()
    engine_vllm = g.generation == "vllm" or g.generation == "auto" and shape.total_params() > 1e8
    seq = prompt_tokens + g.max_completion_length
    return Workload(
        student, seq_len=seq, micro_batch=g.per_device_train_batch_size, frozen=frozen,
        generation_reserve=g.vllm_gpu_memory_utilization if engine_vllm else 0.0,
        generation_tokens=0 if engine_vllm else g.per_device_train_batch_size * seq, name=recipe.model,
    )


def opd_workload(student: Workload, teacher: ModelShape, served: bool, teacher_dtype: str = "bfloat16") -> Workload:
    """On-policy distillation: the student's workload plus its teacher, local (weights on every GPU, or
    sharded with the student) or served (no memory here)."""
    import dataclasses

    return dataclasses.replace(student, frozen=(*student.frozen, FrozenModel(teacher, "teacher", teacher_dtype, served)))
