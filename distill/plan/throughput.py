"""Throughput at a stated model-FLOPs utilisation (MFU): FLOPs per trained token from the model's shape,
tokens/s per GPU and hours per epoch.

FLOPs per token follow the PaLM paper's accounting (Chowdhery et al. 2022, appendix B): 6 x the parameters
that take part in matmuls (forward 2, backward 4) plus 12 x layers x hidden x sequence length for attention
(scores and values, non-causal, as PaLM and Megatron count them). LoRA and QLoRA skip the frozen weights'
gradients: 4 x instead of 6 x. Recomputation under gradient checkpointing is not model FLOPs: a stated MFU
already absorbs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.plan.workload import Workload

# Dense bf16 peak TFLOP/s per GPU from the vendors' data sheets (SXM parts).
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "B200": 2250.0}
DEFAULT_MFU = 0.4


@dataclass(frozen=True)
class Throughput:
    """Tokens/s and time at a stated MFU."""

    flops_per_token: float
    tokens_per_second_per_gpu: float
    tokens_per_second: float
    hours_per_epoch: float | None
    mfu: float
    peak_tflops: float


def flops_per_token(workload: Workload) -> float:
    """Model FLOPs to train on one token.

    >>> from distill.plan.shapes import KNOWN_SHAPES
    >>> from distill.plan.workload import TrainedModel
    >>> w = Workload(TrainedModel(KNOWN_SHAPES["meta-llama/Llama-3.1-8B"]), seq_len=8192)
    >>> round(flops_per_token(w) / 1e9, 1)  # 6 x 7.50e9 matmul weights (no lookup) + 12 x 32 x 4096 x 8192
    57.9
    """
    shape = workload.student.shape
    matmul = shape.matmul_params()
    weights = 6 if workload.student.mode == "full" else 4
    attention = 12 * shape.num_layers * shape.num_heads * shape.head_dim * workload.seq_len
    return weights * matmul + attention


def throughput(workload: Workload, gpus: int, mfu: float = DEFAULT_MFU, peak_tflops: float = PEAK_TFLOPS["H100"],
               epoch_tokens: float | None = None, cp_size: int = 1) -> Throughput:
    """Tokens/s per GPU and over `gpus` GPUs at `mfu` of `peak_tflops`, and hours for `epoch_tokens`."""
    per_token = flops_per_token(workload)
    per_gpu = mfu * peak_tflops * 1e12 / per_token
    total = per_gpu * gpus
    hours = epoch_tokens / total / 3600 if epoch_tokens else None
    return Throughput(per_token, per_gpu, total, hours, mfu, peak_tflops)
