"""Activation memory: the tensors autograd saves in each decoder layer, the LM head and loss, and the
transient workspaces of the loss kernel and attention.

The counts follow transformers' Qwen2/Llama layers as they run under the trainer, tensor by tensor
(Korthikanti et al. 2022 count the same way for GPT layers; the SwiGLU MLP and the fp32 RMSNorm change
the sums):
- RMSNorm upcasts its input to fp32 and saves it (4 bytes/element) plus, when its weight trains, the
  normalised input before the weight multiply (in the residual dtype);
- a linear layer whose weight trains saves its input (under autocast, a bf16 copy per linear; the same
  tensor otherwise); a frozen linear (LoRA's base) saves nothing;
- attention keeps q (after RoPE), k and v (repeated to every head when sdpa gets a mask, as with packed
  rows), its output and log-sum-exp, and o_proj's input (a copy in transformers' layout);
- SwiGLU saves gate, silu(gate) and up, and down_proj's input silu(gate) * up;
- a LoRA adapter saves its (fp32) input after dropout, the dropout mask (1 byte) and lora_A's output.
"""

from __future__ import annotations

from distill.plan.precision import Precision
from distill.plan.shapes import LINEARS, ModelShape
from distill.plan.workload import Setup, Workload

# TRL's ChunkedLogProbFunction: tiles of at most 4,096 tokens x 32,768 vocabulary entries.
TOKEN_CHUNK, VOCAB_CHUNK = 4096, 32768
# Its torch fallback (no Triton: CPU) holds this many bytes per tile element at once: in the backward y, z,
# log p, p and the gradient (fp32), the target mask (bool) and two fp32 temporaries; in the forward z, exp,
# their product and the top-1 masks.
CPU_TILE_BYTES_BWD, CPU_TILE_BYTES_FWD = 29, 13


def _lora_linears(workload: Workload) -> list[str]:
    student = workload.student

    if student.mode == "full":
        return []
    return list(LINEARS) if student.lora_targets == "all-linear" else list(student.lora_targets)


def layer_saves(workload: Workload, setup: Setup, p: Precision, shape: ModelShape | None = None) -> dict[str, float]:
    """Bytes autograd keeps for one decoder layer until its backward, by tensor group, on one GPU."""
    s = shape or workload.student.shape
    T = workload.tokens / setup.cp_size
    h, f, kv, q = s.hidden_size, s.intermediate_size, s.kv_dim, s.num_heads * s.head_dim
    c, r = p.compute, p.residual
    full = workload.student.mode == "full"
    out: dict[str, float] = {}
    # Two RMSNorms: the fp32 input and, when the weight trains, the normalised input before the weight.
    out["norms"] = 2 * (4 * T * h + 4 * T + (r * T * h if full else 0))
    if full:
        # Inputs of the trained linears: one shared tensor, or one bf16 copy per linear under autocast.
        mixed = p.autocast and r != c
        out["linear inputs"] = (3 * c * T * h + 2 * c * T * h if mixed else 2 * c * T * h) + c * T * q + c * T * f
    masked = setup.packing and setup.attention != "flash_attention_2"
    kv_saved = 2 * c * T * (q if masked else kv)  # repeat_kv copies when sdpa/eager get a mask
    out["attention"] = c * T * q + kv_saved + c * T * q + 4 * T * s.num_heads
    out["mlp"] = 3 * c * T * f  # gate, silu(gate), up
    lora = _lora_linears(workload)
    if lora:
        sizes = s.linear_sizes()
        ca = p.adapter_compute
        rank = workload.student.lora_r
        # Dropout's mask: a bool from CUDA's fused kernel; on CPU torch multiplies by a noise tensor of the
        # input's dtype (fp32 here) and saves it.
        mask = (1 if setup.device == "cuda" else ca) if workload.student.lora_dropout > 0 else 0
        out["lora"] = sum((ca + mask) * T * sizes[name][0] + ca * T * rank for name in lora)
    return out


def first_layer_discount(workload: Workload, setup: Setup, p: Precision) -> float:
    """Bytes the first layer does not save under LoRA without checkpointing: its input comes from a frozen
    embedding and needs no gradient, so its first RMSNorm and the q/k/v adapters' dropout save nothing for it
    (with checkpointing, peft's enable_input_require_grads makes the input need one)."""
    if workload.student.mode == "full" or setup.checkpointing:
        return 0.0
    s = workload.student.shape
    T = workload.tokens / setup.cp_size
    mask = (1 if setup.device == "cuda" else p.adapter_compute) if workload.student.lora_dropout > 0 else 0
    qkv = [n for n in ("q_proj", "k_proj", "v_proj") if n in _lora_linears(workload)]
    return 4 * T * s.hidden_size + 4 * T + len(qkv) * mask * T * s.hidden_size


def head_saves(workload: Workload, setup: Setup, p: Precision) -> dict[str, float]:
    """Bytes kept after the last layer: the final norm and the LM head's saved input."""
    s = workload.student.shape
    T = workload.tokens / setup.cp_size
    full = workload.student.mode == "full"
    out = {"final norm": 4 * T * s.hidden_size + 4 * T + (p.residual * T * s.hidden_size if full else 0)}
    # The fused head saves its (flattened, copied) input and two fp32 values per token; the full head saves
    # the logits in the model output and the fp32 log-softmax.
    out["head input"] = p.residual * T * s.hidden_size + 8 * T
    return out


def logits_bytes(workload: Workload, setup: Setup, p: Precision) -> tuple[float, float]:
    """(forward, backward) transient bytes of the LM head and loss on one GPU.

    Fused (TRL's chunked LM head): one tile of logits, fp32 gradients of the hidden states and of the head
    weight (then cast to the weight's dtype), plus the torch fallback's fp32 tiles on CPU. Full logits:
    the logits, their fp32 upcast and log-softmax, and fp32 gradients of the same size.

    >>> from distill.plan.precision import precision_path
    >>> from distill.plan.shapes import KNOWN_SHAPES
    >>> from distill.plan.workload import TrainedModel
    >>> w = Workload(TrainedModel(KNOWN_SHAPES["Qwen/Qwen2.5-Math-7B"]), seq_len=32768, micro_batch=2)
    >>> s = Setup(fused_loss=False, attention="flash_attention_2")
    >>> [round(b / 1e9, 1) for b in logits_bytes(w, s, precision_path(w, s))]  # 19.9 GB of bf16 logits, 39.9 GB per fp32 copy
    [99.7, 120.5]
    """
    s = workload.student.shape
    T = workload.tokens / setup.cp_size
    V, h = s.vocab_size, s.hidden_size
    head_trains = workload.student.mode == "full"
    # The head weight's gradient accumulates in fp32 over the tiles and is cast to the weight's dtype at the
    # end, when the tiles are gone: the larger of the two moments is the loss backward's peak.
    weight_fp32 = 4 * V * h if head_trains else 0.0
    weight_cast = p.grad * V * h if head_trains else 0.0
    hidden_grad = 4 * T * h
    if setup.fused_loss:
        n = min(T, TOKEN_CHUNK)
        tile = n * min(V, VOCAB_CHUNK)
        buffer = p.compute * tile
        cpu = setup.device == "cpu"
        forward = buffer + (CPU_TILE_BYTES_FWD * tile if cpu else 0)
        in_loop = buffer + hidden_grad + weight_fp32 + (CPU_TILE_BYTES_BWD * tile if cpu else 0)
        at_return = hidden_grad + p.compute * T * h + weight_fp32 + weight_cast
        return forward, max(in_loop, at_return)
    # Full logits (the model's own loss): the logits, their fp32 upcast and the saved log-softmax in the
    # forward; in the backward the log-softmax, its incoming gradient and the gradient it writes (fp32).
    logits = p.compute * T * V
    upcast = 4 * T * V if p.compute != 4 else 0
    forward = logits + upcast + 4 * T * V
    backward = 3 * 4 * T * V + hidden_grad
    return forward, backward


def attention_workspace(workload: Workload, setup: Setup, p: Precision) -> float:
    """Bytes of attention masks and scores that live during the forward/backward.

    flash-attention with padding-free batches needs no mask. sdpa and eager on packed rows get a block-causal
    bool mask per row (b x s x s bytes); eager also saves the fp32 softmax and its cast for every layer,
    which `layer_attention_scores` counts.
    """
    if setup.attention == "flash_attention_2" or not setup.packing:
        return 0.0
    s_local = workload.seq_len / setup.cp_size
    mask = workload.micro_batch * s_local * workload.seq_len
    return mask * (1 + p.compute)  # the bool mask and the additive mask sdpa's kernels take


def layer_attention_scores(workload: Workload, setup: Setup, p: Precision) -> float:
    """Bytes of attention scores saved per layer (eager attention only: fp32 softmax and its cast)."""
    if setup.attention != "eager":
        return 0.0
    s = workload.student.shape
    return workload.micro_batch * s.num_heads * workload.seq_len**2 / setup.cp_size * (4 + p.compute)


def layer_backward_workspace(workload: Workload, setup: Setup, p: Precision) -> float:
    """Gradients of activations alive while one layer runs its backward (the MLP's dominate)."""
    s = workload.student.shape
    T = workload.tokens / setup.cp_size
    return 3 * p.compute * T * s.intermediate_size + 2 * 4 * T * s.hidden_size
