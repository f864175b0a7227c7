"""Peak memory per GPU of one training step, broken down by kind, from a workload and a setup.

The step runs through phases (forward and loss, the loss's backward, the layers' backward, the end of
backward, the optimizer step, and for RL the rollout); each phase holds a different mix of weights,
gradients, activations and workspaces. The peak is the largest phase, and the breakdown is that phase's.
Model states follow `distill.plan.precision`; activations follow `distill.plan.activations`.

GPU-only terms (the CUDA context, NCCL buffers, allocator fragmentation) are a fixed allowance here,
checked only by `benchmarks/gpu_check.sh`; the CPU validation (`benchmarks/plan_memory.py`) covers the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distill.plan import activations as act
from distill.plan.precision import NF4_BYTES, Precision, precision_path
from distill.plan.workload import DTYPE_BYTES, Setup, Workload

GIB = 1024**3
CUDA_CONTEXT = 0.75 * GIB  # CUDA context and kernels loaded by torch (lazy loading on)
NCCL_BUFFERS = 0.5 * GIB  # communicator buffers when more than one GPU trains
FRAGMENTATION = 0.05  # the caching allocator's reserved-but-unused share at peak
KINDS = ("parameters", "gradients", "optimizer", "activations", "logits and loss", "attention workspace",
         "sharding buffers", "frozen models", "generation", "gpu overhead")


@dataclass
class Breakdown:
    """Bytes per GPU at the peak phase, by kind (`KINDS`)."""

    parts: dict[str, float]
    phase: str
    precision: Precision
    phases: dict[str, float] = field(default_factory=dict)  # every phase's total, for reports and tests

    @property
    def total(self) -> float:
        """Peak bytes per GPU."""
        return sum(self.parts.values())

    def gib(self, kind: str | None = None) -> float:
        """A kind's bytes (or the total) in GiB."""
        return (self.total if kind is None else self.parts.get(kind, 0.0)) / GIB


def model_states(workload: Workload, setup: Setup, p: Precision) -> tuple[float, float, float]:
    """(weights, gradients, optimizer states) of the trained model on one GPU, at their largest."""
    student = workload.student
    shape = student.shape
    trainable = student.trainable_params()
    total = shape.total_params()
    if student.mode == "full":
        weights = total * p.trainable_weight
    elif student.mode == "lora":
        weights = total * p.frozen_weight + trainable * p.trainable_weight
    else:
        linears = shape.linear_params()
        weights = linears * NF4_BYTES + (total - linears) * p.frozen_other + trainable * p.trainable_weight
    grads = trainable * p.grad
    if setup.strategy == "ddp" and setup.world > 1:
        grads *= 2  # DDP's reducer keeps its own bucket copy of every gradient (gradient_as_bucket_view off)
    optimizer = trainable * p.optimizer
    return weights / p.shard, grads / p.shard, optimizer / p.shard


def sharding_buffers(workload: Workload, setup: Setup, p: Precision) -> float:
    """Unsharded parameters and gradients that FSDP/ZeRO-3 gather around the unit that runs.

    FSDP2 (accelerate's layout): the current and the prefetched decoder layer in bf16, the LM head unit
    kept gathered from its forward to its backward, and one layer's unsharded bf16 gradient before its
    reduce-scatter. ZeRO-3: DeepSpeed's estimator term, 4 bytes x the largest module's parameters.
    """
    if p.shard == 1:
        return 0.0
    s = workload.student.shape
    layer = s.layer_params()
    if setup.strategy == "zero3":
        return 4.0 * max(layer, s.vocab_size * s.hidden_size)
    head = s.vocab_size * s.hidden_size
    return 2 * 2 * layer + 2 * head + 2 * layer


def frozen_bytes(workload: Workload, setup: Setup) -> float:
    """Weights of the frozen models held on these GPUs (sharded like the student under FSDP/ZeRO-3)."""
    shard = setup.world if setup.strategy in ("fsdp", "zero3") else 1
    return sum(m.shape.total_params() * DTYPE_BYTES[m.dtype] for m in workload.frozen if not m.served) / shard


def estimate(workload: Workload, setup: Setup) -> Breakdown:
    """The per-GPU peak of one training step of `workload` on `setup`, with its breakdown."""
    p = precision_path(workload, setup)
    shape = workload.student.shape
    L = shape.num_layers
    weights, grads, optimizer = model_states(workload, setup, p)
    base = {"parameters": weights, "optimizer": optimizer, "sharding buffers": sharding_buffers(workload, setup, p),
            "frozen models": frozen_bytes(workload, setup)}
    if workload.generation_reserve:
        base["generation"] = workload.generation_reserve * setup.gpu_memory_gib * GIB
    layer = sum(act.layer_saves(workload, setup, p).values()) + act.layer_attention_scores(workload, setup, p)
    head = sum(act.head_saves(workload, setup, p).values())
    T = workload.tokens / setup.cp_size
    if setup.checkpointing:
        saved = L * p.residual * T * shape.hidden_size + head
        recompute = layer  # one layer's activations are rebuilt during its backward
    else:
        saved = L * layer + head - act.first_layer_discount(workload, setup, p)
        recompute = 0.0
    attention = act.attention_workspace(workload, setup, p)
    loss_fwd, loss_bwd = act.logits_bytes(workload, setup, p)
    layer_ws = act.layer_backward_workspace(workload, setup, p)
    trained_head = shape.head_params() if workload.student.mode == "full" else 0
    head_grad = grads * trained_head / max(workload.student.trainable_params(), 1)
    phases: dict[str, dict[str, float]] = {
        "forward": {"activations": saved, "attention workspace": attention, "logits and loss": loss_fwd},
        "loss backward": {"activations": saved, "attention workspace": attention, "logits and loss": loss_bwd},
        "first layer backward": {"activations": saved + recompute + layer_ws, "attention workspace": attention,
                                 "gradients": head_grad},
        "last layer backward": {"activations": (p.residual * T * shape.hidden_size if setup.checkpointing else layer)
                                + recompute + layer_ws, "attention workspace": attention, "gradients": grads},
        "optimizer step": {"gradients": grads},
    }
    if shape.tied_embeddings and workload.student.mode == "full":
        # The embedding's dense gradient arrives while the tied head's is already held, then is added into it.
        phases["embedding backward"] = {"gradients": grads + shape.embedding_params() * p.grad / p.shard}
    if workload.generation_tokens:
        kv = 2 * L * shape.kv_dim * p.compute * workload.generation_tokens
        phases["rollout"] = {"generation": kv + base.get("generation", 0.0)}
    totals: dict[str, float] = {}
    parts_by_phase: dict[str, dict[str, float]] = {}
    for name, extra in phases.items():
        parts = {kind: 0.0 for kind in KINDS}
        parts.update(base)
        for kind, value in extra.items():
            parts[kind] = value if kind == "generation" else parts[kind] + value
        if setup.device == "cuda":
            torch_bytes = sum(parts.values())
            parts["gpu overhead"] = CUDA_CONTEXT + (NCCL_BUFFERS if setup.world > 1 else 0) + FRAGMENTATION * torch_bytes
        parts_by_phase[name] = parts
        totals[name] = sum(parts.values())
    peak = max(totals, key=lambda k: totals[k])
    return Breakdown(parts_by_phase[peak], peak, p, totals)
