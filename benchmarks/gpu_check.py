"""The GPU half of the planner's validation and the SFT throughput check; run by benchmarks/gpu_check.sh
(see there). Prints one Markdown table. Needs CUDA; imports nothing that a bare torch + transformers image
lacks, except TRL's chunked log-prob kernel or Liger's fused linear cross-entropy when their wheels are
carried in (without either, the loss falls back to full logits and the table says so)."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BASE = "Qwen/Qwen2.5-Math-1.5B"
CASES = ((8192, 2), (32768, 2))  # (tokens per packed row, rows per step): students/qwen2.5-math-1.5b.yaml's 2 x 32k
WARMUP, TIMED = 2, 3
GIB = 1024**3
# `python benchmarks/gpu_check.py --dry-run`: the same code on CPU with one layer and 256 tokens, to catch
# mistakes before GPU time is spent (the figures it prints mean nothing).
DRY = "--dry-run" in sys.argv
DEVICE = "cpu" if DRY else "cuda"
if DRY:
    CASES, WARMUP, TIMED = ((256, 1),), 1, 1


def peak_tflops() -> float:
    """Dense bf16 peak of the GPU (GPU_TFLOPS overrides)."""
    if "GPU_TFLOPS" in os.environ:
        return float(os.environ["GPU_TFLOPS"])
    if DRY:
        return 1.0
    name = torch.cuda.get_device_name()
    return 989.0 if ("H100" in name or "H200" in name) else 312.0 if "A100" in name else 989.0


def loss_kind() -> str:
    """The fused loss available: TRL's chunked LM head, Liger's fused linear cross-entropy, or none."""
    try:  # the carried TRL wheel may not import against the image's transformers: say so and fall back
        from trl.kernels.chunked_logprob import ChunkedLogProbFunction  # noqa: F401

        return "trl-chunked"
    except Exception as err:
        print(f"TRL's chunked log-prob kernel not usable: {type(err).__name__}: {str(err)[:160]}")
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss  # noqa: F401

        return "liger-flce"
    except Exception as err:
        print(f"Liger's fused linear cross-entropy not usable: {type(err).__name__}: {str(err)[:160]}")
    return "full-logits"


def build(seq: int):
    """A random-init Qwen2.5-Math-1.5B-shaped model in bf16 on the GPU, as the 1.5B recipe trains it."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    from distill.plan import KNOWN_SHAPES

    s = KNOWN_SHAPES[BASE]
    config = Qwen2Config(vocab_size=s.vocab_size, hidden_size=s.hidden_size, intermediate_size=s.intermediate_size,
                         num_hidden_layers=1 if DRY else s.num_layers, num_attention_heads=s.num_heads,
                         num_key_value_heads=s.num_kv_heads, tie_word_embeddings=s.tied_embeddings,
                         max_position_embeddings=max(seq, 32768), rope_theta=300000.0, use_cache=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa").to(DEVICE)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return model


def packed_batch(seq: int, rows: int, vocab: int) -> dict[str, torch.Tensor]:
    """Rows of several documents each, position ids restarting per document and no attention mask (the
    block-causal layout of distill's PackedRowsCollator)."""
    g = torch.Generator().manual_seed(seq)
    ids, positions = [], []
    for _ in range(rows):
        lengths, left = [], seq
        while left > 0:
            n = min(left, int(torch.randint(seq // 8, seq // 2, (1,), generator=g)))
            lengths.append(n)
            left -= n
        ids.append(torch.randint(0, vocab, (seq,), generator=g))
        positions.append(torch.cat([torch.arange(n) for n in lengths]))
    input_ids = torch.stack(ids).to(DEVICE)
    labels = input_ids.clone()
    position_ids = torch.stack(positions).to(DEVICE)
    labels[position_ids == 0] = -100
    return {"input_ids": input_ids, "position_ids": position_ids, "labels": labels}


def loss_of(model, batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
    """The SFT loss with the fused kernel at hand."""
    if kind == "full-logits":
        return model(**batch).loss
    hidden = model.model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).last_hidden_state
    hidden, labels = hidden[:, :-1].reshape(-1, hidden.size(-1)), batch["labels"][:, 1:].reshape(-1)
    mask = labels != -100
    weight = model.get_output_embeddings().weight
    if kind == "trl-chunked":
        from trl.kernels.chunked_logprob import ChunkedLogProbFunction

        log_probs = ChunkedLogProbFunction.apply(hidden[mask], weight, None, labels[mask], 1.0, 32768, None, 1.0,
                                                 ("log_probs",))[0]
        return -log_probs.mean()
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    return LigerFusedLinearCrossEntropyLoss()(weight, hidden[mask], labels[mask])


def predicted(seq: int, rows: int, fused: bool) -> tuple[float, float]:
    """The planner's (torch bytes, total bytes with the GPU-only allowance) for this run on this GPU."""
    from distill.plan import KNOWN_SHAPES, Setup, TrainedModel, Workload, estimate

    memory = 1.0 if DRY else torch.cuda.get_device_properties(0).total_memory / GIB
    w = Workload(TrainedModel(KNOWN_SHAPES[BASE], mode="full", dtype="bfloat16", bf16=True), seq_len=seq,
                 micro_batch=rows)
    b = estimate(w, Setup(gpus_per_node=1, gpu_memory_gib=memory, strategy="ddp", checkpointing=True,
                          fused_loss=fused, attention="sdpa", packing=True, device="cuda"))
    return b.total - b.parts["gpu overhead"], b.total


def run_case(seq: int, rows: int, kind: str) -> str:
    """One table row: tokens/s, MFU, measured and predicted peaks."""
    from distill.plan import KNOWN_SHAPES, TrainedModel, Workload
    from distill.plan.throughput import flops_per_token

    model = build(seq)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    batch = packed_batch(seq, rows, model.config.vocab_size)
    sync = (lambda: None) if DRY else torch.cuda.synchronize
    try:
        for i in range(WARMUP + TIMED):
            if i == WARMUP:
                sync()
                if not DRY:
                    torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
            loss = loss_of(model, batch, kind)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.2)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        sync()
        seconds = (time.perf_counter() - start) / TIMED
    except torch.cuda.OutOfMemoryError:
        return f"| {seq} x {rows} | {kind} | OOM | | | | |"
    tokens = seq * rows / seconds
    work = Workload(TrainedModel(KNOWN_SHAPES[BASE]), seq_len=seq, micro_batch=rows)
    mfu = tokens * flops_per_token(work) / (peak_tflops() * 1e12)
    if DRY:
        allocated = reserved = 1
        free, total = 0, 1
    else:
        allocated, reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        free, total = torch.cuda.mem_get_info()
    torch_bytes, with_overhead = predicted(seq, rows, kind != "full-logits")
    del model, optimizer, batch
    if not DRY:
        torch.cuda.empty_cache()
    return (f"| {seq} x {rows} | {kind} | {tokens:,.0f} | {100 * mfu:.1f} % | {allocated / GIB:.1f} (planner "
            f"{torch_bytes / GIB:.1f}, {100 * (torch_bytes / allocated - 1):+.0f} %) | {reserved / GIB:.1f} / "
            f"{(total - free) / GIB:.1f} (planner {with_overhead / GIB:.1f}) | {seconds:.2f} |")


def vllm_row() -> str:
    """vLLM generation throughput of the same shape, only if vLLM is importable."""
    if importlib.util.find_spec("vllm") is None:
        return "| vLLM | not importable here | | | | | |"
    import tempfile

    from vllm import LLM, SamplingParams

    model = build(4096).cpu()
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        del model
        llm = LLM(model=directory, skip_tokenizer_init=True, dtype="bfloat16", gpu_memory_utilization=0.5,
                  max_model_len=4096, seed=0)
        prompts = [{"prompt_token_ids": list(range(100, 612))} for _ in range(64)]
        params = SamplingParams(max_tokens=1024, ignore_eos=True, temperature=1.0, detokenize=False)
        start = time.perf_counter()
        outputs = llm.generate(prompts, params)
        seconds = time.perf_counter() - start
    generated = sum(len(o.outputs[0].token_ids) for o in outputs)
    return f"| vLLM generate 64 x 1024 | bf16 | {generated / seconds:,.0f} tokens/s | | | | {seconds:.1f} |"


def main() -> None:
    if not torch.cuda.is_available() and not DRY:
        raise SystemExit("gpu_check: no CUDA device (python benchmarks/gpu_check.py --dry-run checks the code on CPU)")
    kind = loss_kind()
    print(f"{'CPU dry run' if DRY else torch.cuda.get_device_name()}, torch {torch.__version__}, peak {peak_tflops():.0f} TFLOP/s, loss {kind}")
    print("| tokens per step | loss | tokens/s | MFU | peak allocated GiB | reserved / used GiB | s/step |")
    print("|---|---|---|---|---|---|---|")
    for seq, rows in CASES:
        print(run_case(seq, rows, kind), flush=True)
    try:
        print(vllm_row())
    except Exception as err:  # report and go on: the SFT rows above are the check
        print(f"| vLLM | failed: {type(err).__name__}: {str(err)[:120]} | | | | | |")


if __name__ == "__main__":
    main()
