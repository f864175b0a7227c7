"""The memory planner against measured peaks: real-shaped models (layers reduced, real vocabularies) train
a few steps on this machine, and the peak bytes held by torch tensors are compared with `distill.plan`'s
CPU-mode prediction for the same workload.

    python benchmarks/plan_memory.py --out R.jsonl   # every case, one subprocess each, one at a time (~1 hour)
    python benchmarks/plan_memory.py --table R.jsonl # stored measurements against the planner as it is now
    python benchmarks/plan_memory.py --case NAME     # one case (prints one JSON line)
    python benchmarks/plan_memory.py --list          # the cases and their predicted peaks
    python benchmarks/plan_memory.py --published     # the published formulas and figures against the planner

Measurement: `torch.profiler` memory events (every allocation and free of the CPU allocator) summed in
time order over the measured step, plus the bytes of the parameters and optimizer states alive before it:
the peak of bytes held by torch tensors. RSS (the process's peak resident set, which also holds the
interpreter, libraries and allocator caches) is printed beside it and not compared.

The step is the SFT trainer's (TRL 1.16's SFTTrainer.compute_loss and transformers' Trainer): packed rows
built by distill's own `pack_rows` and `PackedRowsCollator` (two documents per row, position ids reset),
TRL's fused LM head (`add_fused_lm_head`, or the model's own full-logits loss), peft's LoRA from distill's
`peft_config`, gradient checkpointing without re-entrancy, `clip_grad_norm_`, fused AdamW and
`zero_grad(set_to_none=True)`. A first step on a 64-token batch creates the optimizer states (as any step
after the first has them); the second step, at the case's length, is the one measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
GIB = 1024**3
QWEN15, QWEN7, LLAMA8 = "Qwen/Qwen2.5-Math-1.5B", "Qwen/Qwen2.5-Math-7B", "meta-llama/Llama-3.1-8B"


def case(base: str, layers: int, seq: int, dtype: str = "bfloat16", mode: str = "full", ckpt: bool = False,
         fused: bool = True, batch: int = 1) -> dict[str, Any]:
    return {"base": base, "layers": layers, "seq_len": seq, "dtype": dtype, "mode": mode, "checkpointing": ckpt,
            "fused_loss": fused, "micro_batch": batch}


CASES: dict[str, dict[str, Any]] = {
    "qwen1.5b-full-bf16-1k": case(QWEN15, 2, 1024),
    "qwen1.5b-full-fp32-1k": case(QWEN15, 2, 1024, dtype="float32"),
    "qwen1.5b-full-bf16-2k": case(QWEN15, 2, 2048),
    "qwen1.5b-full-bf16-2k-logits": case(QWEN15, 2, 2048, fused=False),
    "qwen1.5b-full-bf16-4k": case(QWEN15, 2, 4096),
    "qwen1.5b-lora-bf16-4k": case(QWEN15, 2, 4096, mode="lora"),
    "qwen1.5b-full-bf16-8k": case(QWEN15, 2, 8192),
    "qwen1.5b-full-bf16-8k-ckpt": case(QWEN15, 2, 8192, ckpt=True),
    "qwen7b-lora-bf16-2k": case(QWEN7, 2, 2048, mode="lora"),
    "qwen7b-full-bf16-1k": case(QWEN7, 1, 1024),
    "llama8b-lora-bf16-2k-ckpt": case(LLAMA8, 2, 2048, mode="lora", ckpt=True),
    "llama8b-full-bf16-1k": case(LLAMA8, 1, 1024),
}


def workload_of(spec: dict[str, Any]):
    """The planner's workload and CPU setup for a case."""
    from distill.plan import KNOWN_SHAPES, Setup, TrainedModel, Workload

    shape = KNOWN_SHAPES[spec["base"]].with_layers(spec["layers"])
    student = TrainedModel(shape, mode=spec["mode"], dtype=spec["dtype"], bf16=False, lora_r=16, lora_dropout=0.05)
    workload = Workload(student, seq_len=spec["seq_len"], micro_batch=spec["micro_batch"])
    setup = Setup(device="cpu", strategy="ddp", checkpointing=spec["checkpointing"], fused_loss=spec["fused_loss"],
                  attention="sdpa", packing=True)
    return workload, setup


def build_model(spec: dict[str, Any]):
    """A random-init model of the case's shape, prepared as the SFT trainer prepares it."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config
    from trl.trainer.utils import add_fused_lm_head

    from distill.plan import KNOWN_SHAPES

    s = KNOWN_SHAPES[spec["base"]]
    cls = Qwen2Config if s.qkv_bias else LlamaConfig
    config = cls(vocab_size=s.vocab_size, hidden_size=s.hidden_size, intermediate_size=s.intermediate_size,
                 num_hidden_layers=spec["layers"], num_attention_heads=s.num_heads, num_key_value_heads=s.num_kv_heads,
                 tie_word_embeddings=s.tied_embeddings, max_position_embeddings=max(spec["seq_len"], 4096),
                 use_cache=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, spec["dtype"]), attn_implementation="sdpa")
    model.train()
    if spec["checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if spec["fused_loss"]:
        add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # what SFTTrainer adds
    if spec["mode"] == "lora":
        from peft import get_peft_model

        from distill.train.recipe import recipe_from_mapping
        from distill.train.sft import peft_config

        recipe = recipe_from_mapping({"name": "bench", "model": "tiny", "mode": "lora", "bf16": False,
                                      "dtype": spec["dtype"], "lora": {"r": 16, "alpha": 32, "dropout": 0.05}})
        model = get_peft_model(model, peft_config(recipe))
        if spec["checkpointing"]:
            model.enable_input_require_grads()
    return model


def batches(spec: dict[str, Any]):
    """A 64-token warm-up batch and the measured batch: packed rows of two documents each."""
    import torch
    from datasets import Dataset

    from distill.plan import KNOWN_SHAPES
    from distill.train.data import IGNORE, PackedRowsCollator, pack_rows

    vocab = KNOWN_SHAPES[spec["base"]].vocab_size
    out = []
    for seq, rows in ((64, 1), (spec["seq_len"], spec["micro_batch"])):
        g = torch.Generator().manual_seed(seq)
        docs_ids, docs_labels = [], []
        for _ in range(2 * rows):
            ids = torch.randint(0, vocab, (seq // 2,), generator=g).tolist()
            labels = [IGNORE] * 16 + ids[16:]  # a short prompt without loss, as a chat row has
            docs_ids.append(ids)
            docs_labels.append(labels)
        packed = pack_rows(Dataset.from_dict({"input_ids": docs_ids, "labels": docs_labels}), seq)
        out.append(PackedRowsCollator(pad_token_id=0)(list(packed)))
    return out


def step(model, optimizer, batch: dict[str, Any], fused: bool) -> float:
    """One optimizer step as the SFT trainer takes it."""
    import torch

    if fused:
        outputs = model(**batch, fused_lm_head=True)
        loss = -outputs.log_probs.sum() / outputs.label_mask.sum().clamp(min=1)
    else:
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def live_bytes(model, optimizer) -> int:
    """Bytes of the distinct storages of the parameters, buffers and optimizer states."""
    import torch

    seen: dict[int, int] = {}
    tensors = list(model.parameters()) + list(model.buffers())
    for state in optimizer.state.values():
        tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def run_case(name: str) -> dict[str, Any]:
    """Train the case for the warm-up and the measured step; return the measured and predicted peaks."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from distill.plan import estimate

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    spec = CASES[name]
    model = build_model(spec)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
    warmup, measured = batches(spec)
    step(model, optimizer, warmup, spec["fused_loss"])
    gc.collect()
    before = live_bytes(model, optimizer)
    start = time.monotonic()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        loss = step(model, optimizer, measured, spec["fused_loss"])
    seconds = time.monotonic() - start
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    bounds = phase_bounds(prof, spec["fused_loss"])
    current = peak = 0
    peak_ns = 0
    by_phase: dict[str, int] = {}
    for event in events:
        current += event.nbytes()
        phase = next((name for name, end in bounds if event.start_ns() < end), "optimizer step")
        by_phase[phase] = max(by_phase.get(phase, 0), current)
        if current > peak:
            peak, peak_ns = current, event.start_ns()
    at_peak = innermost_ops(prof, peak_ns)
    workload, setup = workload_of(spec)
    predicted = estimate(workload, setup)
    return {
        "case": name, **spec, "measured_gib": (before + peak) / GIB, "states_gib": before / GIB,
        "predicted_gib": predicted.total / GIB, "predicted_phase": predicted.phase,
        "predicted_parts_gib": {k: round(v / GIB, 3) for k, v in predicted.parts.items() if v},
        "error": predicted.total / (before + peak) - 1,
        "measured_phases_gib": {k: round((before + v) / GIB, 3) for k, v in by_phase.items()},
        "predicted_phases_gib": {k: round(v / GIB, 3) for k, v in predicted.phases.items()}, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
        "step_seconds": round(seconds, 1), "ops_at_peak": at_peak, "loss": loss, "torch": torch.__version__,
    }


def phase_bounds(prof: Any, fused: bool) -> list[tuple[str, int]]:
    """(phase, end time) in order: the forward ends where the backward starts; the loss backward ends with the
    fused head's backward (or the full logits' log-softmax and head matmul); the layers' backward ends with
    the last autograd function; the optimizer step follows."""
    ops = [e for e in prof.profiler.kineto_results.events() if e.name().startswith("autograd::engine::evaluate_function")]
    ops.sort(key=lambda e: e.start_ns())
    if not ops:
        return []
    marker = "ChunkedLogProbFunctionBackward" if fused else "LogSoftmaxBackward0"
    loss = [e for e in ops if marker in e.name()]
    loss_end = loss[-1].start_ns() + loss[-1].duration_ns() if loss else ops[0].start_ns()
    last = max(e.start_ns() + e.duration_ns() for e in ops)
    return [("forward", ops[0].start_ns()), ("loss backward", loss_end), ("layers backward", last)]


def innermost_ops(prof: Any, at_ns: int) -> list[str]:
    """The names of the operators running at a moment, outermost first (where the peak happened)."""
    ops = [e for e in prof.profiler.kineto_results.events()
           if e.name() != "[memory]" and e.start_ns() <= at_ns <= e.start_ns() + e.duration_ns()]
    return [e.name() for e in sorted(ops, key=lambda e: -e.duration_ns())][-4:]


def repredict(row: dict[str, Any]) -> dict[str, Any]:
    """A stored measurement with the planner's prediction recomputed by the code as it is now."""
    from distill.plan import estimate

    spec = {k: row[k] for k in ("base", "layers", "seq_len", "dtype", "mode", "checkpointing", "fused_loss",
                                "micro_batch")}
    predicted = estimate(*workload_of(spec))
    return {**row, "predicted_gib": predicted.total / GIB, "predicted_phase": predicted.phase,
            "error": predicted.total / GIB / row["measured_gib"] - 1,
            "predicted_phases_gib": {k: v / GIB for k, v in predicted.phases.items()}}


def phase_table(rows: list[dict[str, Any]]) -> str:
    """Measured against predicted peaks phase by phase (the layers' backward against the largest of the
    planner's first-layer, last-layer and embedding phases)."""
    lines = ["| case | forward | loss backward | layers backward | optimizer step |", "|---|---|---|---|---|"]
    for r in rows:
        m, p = r["measured_phases_gib"], r["predicted_phases_gib"]
        pred = {"forward": p["forward"], "loss backward": p["loss backward"],
                "layers backward": max(p["first layer backward"], p["last layer backward"],
                                       p.get("embedding backward", 0.0)),
                "optimizer step": p["optimizer step"]}
        cells = [f"{m[k]:.2f} / {pred[k]:.2f}" if k in m else "-" for k in pred]
        lines.append(f"| {r['case']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of measured against predicted peaks."""
    lines = ["| case | layers | tokens | dtype | mode | ckpt | loss | measured GiB | planner GiB | error | peak RSS GiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['layers']} | {r['seq_len'] * r['micro_batch']} | {r['dtype']} | {r['mode']} | "
            f"{'yes' if r['checkpointing'] else 'no'} | {'fused' if r['fused_loss'] else 'full logits'} | "
            f"{r['measured_gib']:.2f} | {r['predicted_gib']:.2f} | {100 * r['error']:+.1f} % | {r['peak_rss_gib']:.2f} |")
    worst = max(abs(r["error"]) for r in rows)
    lines.append(f"\nworst deviation: {100 * worst:.1f} % (target: within 15 % on every case)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--cases", help="comma-separated subset to run")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--published", action="store_true")
    parser.add_argument("--out", default=None, help="also write the results as JSON lines here")
    parser.add_argument("--table", metavar="RESULTS.jsonl",
                        help="print the table of stored measurements against the planner as it is now")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)), flush=True)
        return
    if args.list:
        from distill.plan import estimate

        for name, spec in CASES.items():
            b = estimate(*workload_of(spec))
            print(f"{name:32s} predicted {b.total / GIB:6.2f} GiB at {b.phase}")
        return
    if args.table:
        rows = [json.loads(line) for line in open(args.table, encoding="utf-8") if line.strip()]
        rows = [repredict(row) for row in rows]
        print(table(rows))
        print("\nmeasured / planner GiB at each phase's peak:\n")
        print(phase_table(rows))
        return
    if args.published:
        from published_plan import report  # benchmarks/published_plan.py

        print(report())
        return
    names = args.cases.split(",") if args.cases else list(CASES)
    rows = []
    for name in names:
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, __file__, "--case", name], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name}: failed (exit {done.returncode})\n{done.stderr[-2000:]}", flush=True)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{name}: measured {row['measured_gib']:.2f} GiB, planner {row['predicted_gib']:.2f} GiB "
              f"({100 * row['error']:+.1f} %), RSS {row['peak_rss_gib']:.2f} GiB, step {row['step_seconds']} s", flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
    if rows:
        print(table(rows))


if __name__ == "__main__":
    main()
