"""What the planner plans: a `Workload` (the trained model, any frozen models beside it, the tokens per
step) on a `Setup` (GPUs, nodes, sharding, checkpointing, loss kernel, attention).

One workload type serves every trainer: `distill train` (a student), `distill reinforce` (a student and
its reference model, plus the rollout engine's memory) and the coming `distill opd` (a student and a
teacher, local or served: a served teacher costs nothing on the student's GPUs). Each builds a
`Workload` and calls `distill.plan.plan(workload, hardware)` once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from distill.plan.shapes import ModelShape

Strategy = Literal["ddp", "fsdp", "zero3"]
Device = Literal["cuda", "cpu"]
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class TrainedModel:
    """The model being trained and how: full fine-tuning, LoRA or QLoRA, its load dtype and autocast."""

    shape: ModelShape
    mode: Literal["full", "lora", "qlora"] = "full"
    dtype: str = "bfloat16"  # the dtype the weights load in (the recipe's `dtype`)
    bf16: bool = True  # bf16 autocast on GPU (TrainingArguments' bf16; never on CPU)
    lora_r: int = 16
    lora_targets: str | tuple[str, ...] = "all-linear"
    lora_dropout: float = 0.05

    def trainable_params(self) -> int:
        """Parameters the optimizer updates."""
        if self.mode == "full":
            return self.shape.total_params()
        targets = self.lora_targets if isinstance(self.lora_targets, str) else list(self.lora_targets)
        return self.shape.lora_params(self.lora_r, targets)


@dataclass(frozen=True)
class FrozenModel:
    """A model that only runs forward beside the trained one: GRPO's reference model, a local teacher.

    `served`: it runs on other machines (a vLLM server), so it costs nothing on these GPUs.
    """

    shape: ModelShape
    role: str = "reference"
    dtype: str = "bfloat16"
    served: bool = False


@dataclass(frozen=True)
class Workload:
    """One optimizer micro-step's worth of work on each GPU."""

    student: TrainedModel
    seq_len: int  # tokens per sequence (a packed row, or prompt + completion)
    micro_batch: int = 1  # sequences per GPU per forward
    frozen: tuple[FrozenModel, ...] = ()
    # A colocated vLLM engine reserves this share of every GPU (GRPO's vllm_gpu_memory_utilization).
    generation_reserve: float = 0.0
    # transformers' generate keeps a KV cache of this many tokens per GPU while it rolls out.
    generation_tokens: int = 0
    name: str = ""

    @property
    def tokens(self) -> int:
        """Tokens per GPU per forward."""
        return self.seq_len * self.micro_batch


@dataclass(frozen=True)
class Setup:
    """Where and how the workload runs."""

    gpus_per_node: int = 1
    nodes: int = 1
    gpu_memory_gib: float = 80.0
    strategy: Strategy = "ddp"
    checkpointing: bool = True
    fused_loss: bool = True  # TRL's chunked LM head (log-probs without the full logits); False: full logits
    attention: str = "sdpa"  # flash_attention_2 | sdpa | eager
    cp_size: int = 1  # context parallelism: each sequence split over this many GPUs
    device: Device = "cuda"
    packing: bool = True

    @property
    def world(self) -> int:
        """All GPUs (processes)."""
        return self.gpus_per_node * self.nodes

    def replace(self, **changes: object) -> Setup:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
