"""The precision path of a workload: what is stored in which dtype, what the optimizer keeps, and the dtypes
activations are saved in. Each rule names the library behaviour it follows, because that behaviour (not a
textbook formula) is what decides the bytes:

- torch AdamW (the Trainer's default, fused) keeps exp_avg and exp_avg_sq in the parameter's dtype: a
  bf16-loaded model under DDP trains with pure-bf16 weights and moments, 8 bytes per parameter.
- accelerate's FSDP2 with `mixed_precision: bf16` upcasts trainable parameters to fp32 master weights and
  computes in bf16 (MixedPrecisionPolicy(param_dtype=bf16)): 4 + 4 + 8 = 16 bytes per parameter, sharded.
- DeepSpeed ZeRO-3 in bf16: bf16 parameters, fp32 gradient partitions, fp32 master weights and moments:
  18 bytes per parameter, sharded (DeepSpeed's own estimator uses 18).
- peft keeps LoRA adapters in fp32 (`autocast_adapter_dtype`) and casts each adapter's input to fp32.
- peft's `prepare_model_for_kbit_training` (QLoRA) casts every parameter that is not 4-bit (embeddings,
  LM head, norms) to fp32, and bitsandbytes' Linear4bit returns its input's dtype: QLoRA's activations are
  fp32. NF4 with double quantisation costs 0.5 + 1/64 + 4/(64*256) bytes per weight.
- On CPU the project never autocasts (TrainingArguments' bf16 is set only with CUDA).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distill.plan.workload import DTYPE_BYTES, Setup, Workload

NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit weights, 8-bit absmax per 64, fp32 per 256 absmax blocks


@dataclass(frozen=True)
class Precision:
    """Bytes per parameter of each stored kind, and the bytes activations are saved in."""

    trainable_weight: float  # master copy of each trainable parameter
    frozen_weight: float  # each frozen base parameter (LoRA); QLoRA's linears use NF4_BYTES
    frozen_other: float  # QLoRA: the parameters prepare_model_for_kbit_training upcasts (embeddings, head, norms)
    grad: float
    optimizer: float  # AdamW's two moments (plus fp32 master weights where the weights are not fp32)
    compute: int  # matmul outputs and attention tensors
    residual: int  # the residual stream and RMSNorm outputs
    adapter_compute: int  # LoRA adapter path
    autocast: bool
    shard: int  # states are divided by this many ranks
    notes: tuple[str, ...] = field(default_factory=tuple)


def precision_path(workload: Workload, setup: Setup) -> Precision:
    """The precision path that the trainer takes for this workload on this setup."""
    student = workload.student
    w = DTYPE_BYTES[student.dtype]
    gpu = setup.device == "cuda"
    autocast = gpu and student.bf16
    shard = setup.world if setup.strategy in ("fsdp", "zero3") else 1
    notes: list[str] = []
    if student.mode == "full":
        if setup.strategy == "fsdp" and gpu:
            notes.append("FSDP2 (accelerate, mixed_precision bf16): fp32 master weights, bf16 compute")
            return Precision(4, 0, 0, 4, 8, 2, 2, 2, autocast, shard, tuple(notes))
        if setup.strategy == "zero3" and gpu:
            notes.append("ZeRO-3 bf16: bf16 weights, fp32 gradient partitions, fp32 master weights and moments")
            return Precision(2, 0, 0, 4, 12, 2, 2, 2, autocast, shard, tuple(notes))
        if w == 2:
            notes.append(f"{student.dtype} weights with AdamW moments in {student.dtype} (no fp32 master copy)")
            return Precision(w, 0, 0, w, 2 * w, 2, 2, 2, autocast, shard, tuple(notes))
        if autocast:
            notes.append("fp32 weights and moments, bf16 autocast: fp32 residual stream, bf16 matmuls")
            return Precision(4, 0, 0, 4, 8, 2, 4, 2, True, shard, tuple(notes))
        notes.append("fp32 weights, moments and activations")
        return Precision(4, 0, 0, 4, 8, 4, 4, 4, False, shard, tuple(notes))
    # LoRA and QLoRA: adapters (and their gradients and moments) in fp32.
    adapter_compute = 2 if autocast else 4
    if student.mode == "lora":
        c = 2 if (autocast or w == 2) else 4
        notes.append(f"{student.dtype} frozen base, fp32 adapters and moments")
        return Precision(4, w, w, 4, 8, c, c, adapter_compute, autocast, shard, tuple(notes))
    # bitsandbytes' Linear4bit computes in bf16 but returns its input's dtype, and the upcast embeddings and
    # norms make that fp32: the residual stream and the MLP's tensors are fp32 on GPU as on CPU. (Attention
    # runs in bf16 under autocast; counting it at fp32 overstates QLoRA's activations by a little.)
    notes.append("NF4 base linears; embeddings, head and norms upcast to fp32 by prepare_model_for_kbit_training, "
                 "so activations are fp32")
    return Precision(4, NF4_BYTES, 4, 4, 8, 4, 4, adapter_compute, autocast, shard, tuple(notes))
