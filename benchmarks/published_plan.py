"""The planner against published formulas and figures, each deviation named. Printed by
`python benchmarks/plan_memory.py --published` (arithmetic only: seconds, no training).

- ZeRO (Rajbhandari et al. 2020, sec. 3.1 and Fig. 1): mixed-precision Adam keeps 2 + 2 + K (K = 12) bytes
  per parameter; stage 1 divides K by N, stage 2 also the gradients, stage 3 everything. Their example:
  7.5B parameters on 64 GPUs.
- Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models", sec. 4):
  s*b*h*(34 + 5*a*s/h) bytes per layer, 2*s*b*h with full recomputation.
- DeepSpeed's `estimate_zero3_model_states_mem_needs` (deepspeed/runtime/zero/stage3.py, read in the 0.19.8
  sdist): without offload, GPU bytes = 4 x largest layer + 18 x parameters / GPUs. Reimplemented here
  rather than imported, so that deepspeed (a CUDA-oriented package) need not be installed in the shared venv.
- torchtune's README table for Llama 3.1 8B (batch 2, packed to 2048 tokens, torch.compile).
- Liger Kernel's README: Llama-3-8B, batch 8, bf16, AdamW, gradient checkpointing, FSDP on 8 A100s:
  Hugging Face runs out of memory at a 4K context, with Liger's kernels it reaches 16K.
"""

from __future__ import annotations

from distill.plan import GIB, KNOWN_SHAPES, Setup, TrainedModel, Workload, estimate
from distill.plan.activations import layer_saves
from distill.plan.memory import model_states, sharding_buffers
from distill.plan.precision import precision_path

GB = 1e9
LLAMA8 = KNOWN_SHAPES["meta-llama/Llama-3.1-8B"]


def zero_states(psi: float, n: int, stage: int, k: int = 12) -> float:
    """ZeRO's model-state bytes per GPU by stage (0 = plain data parallelism)."""
    if stage == 0:
        return (2 + 2 + k) * psi
    if stage == 1:
        return 4 * psi + k * psi / n
    if stage == 2:
        return 2 * psi + (2 + k) * psi / n
    return (4 + k) * psi / n


def korthikanti(s: int, b: int, h: int, a: int, recompute: bool = False) -> float:
    """Activation bytes per layer (no tensor or sequence parallelism)."""
    return 2 * s * b * h if recompute else s * b * h * (34 + 5 * a * s / h)


def deepspeed_zero3_gpu(total_params: int, largest_layer_params: int, gpus: int) -> float:
    """DeepSpeed's estimate of ZeRO-3 model-state GPU bytes without offload."""
    return 4 * largest_layer_params + int(18 * total_params / gpus)


def _states(workload: Workload, setup: Setup) -> float:
    return sum(model_states(workload, setup, precision_path(workload, setup)))


def zero_rows() -> list[str]:
    psi, n = 7.5e9, 64
    shape = LLAMA8  # any shape: only the parameter count enters; scaled to 7.5B below
    scale = psi / shape.total_params()
    w16 = Workload(TrainedModel(shape, dtype="float32", bf16=True), seq_len=1)
    wbf = Workload(TrainedModel(shape, dtype="bfloat16"), seq_len=1)
    ddp, fsdp = Setup(gpus_per_node=8, nodes=8, strategy="ddp"), Setup(gpus_per_node=8, nodes=8, strategy="fsdp")
    rows = [
        ("ZeRO stage 0 (data parallel, mixed precision)", zero_states(psi, n, 0),
         _states(w16, ddp) * scale, "planner's DDP with fp32 weights + bf16 autocast: also DDP's bucket copy of the "
                                   "gradients (+4 bytes/param); torch AMP keeps no separate fp16 weight copy"),
        ("ZeRO stage 3 (P_os+g+p)", zero_states(psi, n, 3), _states(wbf, fsdp) * scale,
         "planner's FSDP2 (accelerate, bf16 mixed precision): 4 + 4 + 8 = 16 bytes/param / N, equal"),
        ("(ZeRO stage 1, 2: not modelled)", zero_states(psi, n, 1), float("nan"),
         "the planner offers DDP, FSDP/ZeRO-3 only; stage 2 would be 16.6 GB"),
        ("pure-bf16 DDP (the old 7B recipe)", float("nan"), _states(wbf, ddp) * scale,
         "2 + 2 + 4 bytes/param and DDP's 2-byte bucket copy; no ZeRO counterpart"),
    ]
    return [f"| {name} | {paper / GB:.1f} GB | {ours / GB:.1f} GB | {why} |" for name, paper, ours, why in rows]


def korthikanti_rows() -> list[str]:
    s, b = 2048, 1
    h, a = LLAMA8.hidden_size, LLAMA8.num_heads
    w = Workload(TrainedModel(LLAMA8), seq_len=s, micro_batch=b)
    out = []
    for attention, why in (("eager", "eager attention keeps fp32 softmax and its cast; no dropout; SwiGLU f = 3.5h; "
                                      "fp32 RMSNorm inputs; GQA"),
                           ("flash_attention_2", "no s^2 terms (flash attention), no dropout masks, SwiGLU, fp32 "
                                                 "RMSNorm inputs, GQA k/v")):
        setup = Setup(attention=attention, packing=False)
        p = precision_path(w, setup)
        ours = sum(layer_saves(w, setup, p).values())
        if attention == "eager":
            ours += b * a * s * s * (4 + p.compute)
        out.append(f"| Korthikanti per layer, Llama-3.1-8B, s={s} ({attention}) | {korthikanti(s, b, h, a) / 1e6:.0f} MB "
                   f"| {ours / 1e6:.0f} MB | {why} |")
    ckpt = Setup(attention="flash_attention_2", checkpointing=True)
    ours = precision_path(w, ckpt).residual * s * b * h
    out.append(f"| Korthikanti with full recomputation, per layer | {korthikanti(s, b, h, a, True) / 1e6:.1f} MB | "
               f"{ours / 1e6:.1f} MB | the checkpointed layer input (bf16): equal |")
    return out


def deepspeed_rows() -> list[str]:
    out = []
    for name, gpus in (("Qwen/Qwen2.5-32B", 16), ("meta-llama/Llama-3.3-70B-Instruct", 32)):
        shape = KNOWN_SHAPES[name]
        largest = max(shape.vocab_size * shape.hidden_size, shape.layer_params())
        ds = deepspeed_zero3_gpu(shape.total_params(), largest, gpus)
        w = Workload(TrainedModel(shape), seq_len=1)
        setup = Setup(gpus_per_node=8, nodes=gpus // 8, strategy="zero3")
        ours = _states(w, setup) + sharding_buffers(w, setup, precision_path(w, setup))
        out.append(f"| DeepSpeed ZeRO-3 model states, {shape.name}, {gpus} GPUs | {ds / GIB:.2f} GiB | {ours / GIB:.2f} GiB "
                   "| the planner uses DeepSpeed's own arithmetic for ZeRO-3: equal by construction |")
    return out


def torchtune_rows() -> list[str]:
    targets = ("q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # torchtune's 8B LoRA configs
    models = {"full": TrainedModel(LLAMA8),
              "LoRA": TrainedModel(LLAMA8, mode="lora", lora_r=8, lora_dropout=0.0, lora_targets=targets),
              "QLoRA": TrainedModel(LLAMA8, mode="qlora", lora_r=8, lora_dropout=0.0, lora_targets=targets)}
    setup = Setup(gpus_per_node=1, gpu_memory_gib=48, strategy="ddp", attention="sdpa", packing=True)

    def gib(kind: str, ckpt: bool) -> float:
        return estimate(Workload(models[kind], seq_len=2048, micro_batch=2), setup.replace(checkpointing=ckpt)).gib()

    why = {
        "full": "torchtune's single-device full recipe uses bitsandbytes' 8-bit paged AdamW with the optimizer step in "
                "the backward (no gradients held); the planner models the trainer's bf16 AdamW (8 bytes/param)",
        "LoRA": "bf16 base as here; torchtune keeps bf16 adapters (here fp32) and its 4090/A6000 runs differ in "
                "settings the README does not give (checkpointing, compile)",
        "QLoRA": "torchtune keeps the embeddings and head in bf16; peft's prepare_model_for_kbit_training upcasts them "
                 "(4.2 GB) and the activations to fp32",
    }
    published = {"full": "18.9 (4090), 37.4 (A6000)", "LoRA": "16.2 (4090), 30.3 (A6000)", "QLoRA": "7.4 (4090)"}
    return [f"| torchtune Llama 3.1 8B {kind}, 2 x 2048 packed | {published[kind]} GiB | {gib(kind, True):.1f} GiB "
            f"with checkpointing, {gib(kind, False):.1f} without | {why[kind]} |" for kind in models]


def liger_rows() -> list[str]:
    setup = Setup(gpus_per_node=8, gpu_memory_gib=80, strategy="fsdp", checkpointing=True, attention="sdpa",
                  packing=False)
    out = []
    for seq in (4096, 16384):
        w = Workload(TrainedModel(LLAMA8), seq_len=seq, micro_batch=8)
        full, fused = estimate(w, setup.replace(fused_loss=False)), estimate(w, setup)
        out.append(f"| Liger: Llama-3-8B, batch 8, FSDP on 8 A100-80GB, {seq // 1024}K | HF: "
                   f"{'OOM' if seq == 4096 else '-'}; Liger: {'fits' if seq == 16384 else '-'} | full logits "
                   f"{full.gib():.0f} GiB, fused {fused.gib():.0f} GiB | Liger also fuses RMSNorm/SwiGLU/RoPE, which "
                   "the planner does not count; the transformers of 2024 also copied the shifted logits (one more fp32 "
                   "copy), and 'batch 8' may be the global batch |")
    return out


def report() -> str:
    """The Markdown table."""
    lines = ["| published | their figure | planner | deviation and why |", "|---|---|---|---|"]
    for rows in (zero_rows(), korthikanti_rows(), deepspeed_rows(), torchtune_rows(), liger_rows()):
        lines += rows
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
