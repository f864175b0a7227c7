"""The text `distill plan` prints: the setup, the per-GPU breakdown at the peak, the verdict, the smallest
setup that fits and the throughput."""

from __future__ import annotations

from distill.plan.memory import KINDS, Breakdown
from distill.plan.search import Plan
from distill.plan.workload import Setup


def describe(setup: Setup) -> str:
    """A setup in one phrase.

    >>> describe(Setup(gpus_per_node=8, nodes=2, strategy="fsdp", checkpointing=True))
    '2 node(s) x 8 GPU(s), fsdp, gradient checkpointing, fused loss, sdpa'
    """
    parts = [f"{setup.nodes} node(s) x {setup.gpus_per_node} GPU(s)" if setup.device == "cuda"
             else f"CPU, {setup.gpus_per_node} process(es)", setup.strategy,
             "gradient checkpointing" if setup.checkpointing else "no checkpointing",
             "fused loss" if setup.fused_loss else "full logits", setup.attention]
    if setup.cp_size > 1:
        parts.append(f"context parallel {setup.cp_size}")
    return ", ".join(parts)


def breakdown_lines(breakdown: Breakdown) -> list[str]:
    """One line per kind that holds memory at the peak, in GiB."""
    width = max(len(k) for k in KINDS)
    lines = [f"  {kind:<{width}}  {breakdown.gib(kind):8.2f} GiB" for kind in KINDS if breakdown.parts.get(kind)]
    lines.append(f"  {'total':<{width}}  {breakdown.gib():8.2f} GiB  (peak at {breakdown.phase})")
    return lines


def render(p: Plan, source: str = "") -> str:
    """The whole report."""
    w, s = p.workload, p.workload.student
    shape = s.shape
    n = shape.total_params()
    size = f"{n / 1e9:.2f}B" if n >= 1e8 else f"{n / 1e6:.2f}M"
    unit = "GPU" if p.setup.device == "cuda" else "process"
    lines = [
        f"model: {shape.name}: {size} parameters ({shape.num_layers} layers, hidden "
        f"{shape.hidden_size}, vocabulary {shape.vocab_size}), {s.mode}"
        + (f" (r={s.lora_r}, {s.trainable_params() / 1e6:.1f}M trainable)" if s.mode != "full" else ""),
        f"work: {w.micro_batch} sequence(s) x {w.seq_len} tokens per {unit} per micro-step",
    ]
    for m in w.frozen:
        lines.append(f"also: {m.role} {m.shape.name} ({m.dtype})" + (", served elsewhere: no memory here" if m.served else ""))
    lines.append(f"setup: {describe(p.setup)}; {p.setup.gpu_memory_gib:.0f} GiB per {unit}" + (f" ({source})" if source else ""))
    lines.append("precision: " + "; ".join(p.breakdown.precision.notes))
    lines.append(f"per-{unit} peak memory:")
    lines += breakdown_lines(p.breakdown)
    lines.append("verdict: " + p.verdict())
    if p.smallest is None:
        lines.append("smallest setup that fits: none up to 64 nodes")
    else:
        setup, breakdown = p.smallest
        lines.append(f"smallest setup that fits: {describe(setup)} ({breakdown.gib():.1f} GiB per {unit})")
    if p.setup.device != "cuda":
        return "\n".join(lines)  # the throughput below is a GPU figure
    t = p.throughput
    lines.append(f"throughput at {100 * t.mfu:.0f} % MFU of {t.peak_tflops:.0f} TFLOP/s: {t.flops_per_token / 1e9:.1f} "
                 f"GFLOP per token, {t.tokens_per_second_per_gpu:,.0f} tokens/s per GPU, {t.tokens_per_second:,.0f} tokens/s "
                 "in all" + (f", {t.hours_per_epoch:.1f} h per epoch" if t.hours_per_epoch is not None else ""))
    return "\n".join(lines)
