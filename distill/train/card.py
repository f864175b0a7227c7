"""The model card (OUT/README.md): base model, corpus, teacher, recipe and training metrics."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from distill.atomic import atomic_write_text
from distill.paths import public_name
from distill.train.recipe import StudentRecipe


def corpus_facts(data_dir: Path) -> dict[str, Any]:
    """Teachers and sources of the corpus rows, and its funnel when `distill filter` wrote one."""
    path = data_dir / "corpus.jsonl" if data_dir.is_dir() else data_dir
    teachers: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                teacher = row.get("teacher")
                teachers[str(teacher.get("model", teacher) if isinstance(teacher, dict) else teacher)] += 1
                sources[str(row.get("source"))] += 1
    funnel = data_dir / "funnel.json"
    return {
        "path": str(path),
        "teachers": dict(teachers),
        "sources": dict(sources),
        "funnel": json.loads(funnel.read_text(encoding="utf-8")) if funnel.is_file() else None,
    }


def write_card(out_dir: Path, recipe: StudentRecipe, data_dir: Path, report: Any, metrics: dict[str, Any]) -> Path:
    """Write OUT/README.md describing how this student was made."""
    facts = corpus_facts(data_dir)
    losses = [h["loss"] for h in metrics.get("log_history", [])]
    lines = [
        "---",
        f"base_model: {public_name(recipe.model)}",
        "library_name: " + ("peft" if recipe.mode != "full" else "transformers"),
        "tags: [distill, reasoning, sft, trl]",
        "---",
        "",
        f"# {recipe.name}",
        "",
        f"A reasoning student distilled with `distill train` ({recipe.mode} fine-tuning, TRL SFT).",
        "",
        "## Base model",
        "",
        f"- model: `{public_name(recipe.model)}`" + (f" (tiny {recipe.tiny.architecture}, hidden {recipe.tiny.hidden_size}, "
                                         f"{recipe.tiny.num_layers} layers)" if recipe.model == "tiny" else ""),
        f"- context: {recipe.declared_context()} tokens"
        + (f" (raised with max_position_embeddings={recipe.max_position_embeddings}, rope_theta={recipe.rope_theta})"
           if recipe.max_position_embeddings else ""),
        "",
        "## Corpus",
        "",
        f"- file: `{public_name(facts['path'])}`",
        f"- teachers: {', '.join(f'{k} ({v})' for k, v in facts['teachers'].items())}",
        f"- sources: {', '.join(f'{k} ({v})' for k, v in facts['sources'].items())}",
        f"- rows: {report.rows}, trained: {report.kept}, over max_length {report.max_length}: {report.overlong} "
        f"({report.overlong_tokens} tokens beyond it, {report.action})",
        f"- tokens trained on: {report.total_tokens} ({report.label_tokens} with loss)",
        *([f"- filter funnel: `{json.dumps(facts['funnel'], sort_keys=True)[:400]}`"] if facts["funnel"] else []),
        "",
        "## Recipe",
        "",
        f"- file: `{public_name(recipe.path)}`",
        f"- learning rate {recipe.learning_rate}, {recipe.num_train_epochs} epochs, {recipe.lr_scheduler_type} schedule, "
        f"warm-up {recipe.warmup_ratio}",
        f"- max length {recipe.max_length}, packing {recipe.packing}, per-device batch {recipe.per_device_train_batch_size} "
        f"x accumulation {recipe.gradient_accumulation_steps} x {metrics.get('processes', 1)} processes",
        f"- dtype {recipe.dtype}, gradient checkpointing {recipe.gradient_checkpointing}, distributed {recipe.distributed}",
    ]
    if recipe.mode != "full":
        lines.append(f"- LoRA r={recipe.lora.r}, alpha={recipe.lora.alpha}, targets {recipe.lora.target_modules}")
    lines += [f"- source: {s}" for s in recipe.sources]
    lines += [
        "",
        "## Training",
        "",
        f"- steps: {metrics.get('global_step')}, mean train loss {metrics.get('train_loss'):.4f}",
        f"- first logged loss {losses[0]:.4f}, last {losses[-1]:.4f}" if losses else "- no loss logged",
        f"- runtime {metrics.get('train_runtime', 0):.1f} s",
        "",
        "## Use",
        "",
        "Sample with the saved generation config (temperature 0.6, top-p 0.95, as DeepSeek-R1 recommends); the chat",
        "template opens `<think>` in the generation prompt where the student's template does.",
        "",
    ]
    path = out_dir / "README.md"
    atomic_write_text(path, "\n".join(lines))
    return path
