"""`train()`: one student fine-tuned on one corpus, resumable, with everything a user needs in OUT.

OUT holds the final model (safetensors; an adapter for LoRA/QLoRA), the tokenizer with the chat
template, a generation config with R1's sampling defaults and the tokenizer's EOS, README.md (the
model card), data_report.json (over-long rows), train_metrics.json, recipe.yaml, and checkpoint-N/
directories that a later call resumes from.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from distill.atomic import atomic_write_json, atomic_write_text
from distill.config import with_settings
from distill.errors import ConfigError
from distill.plan.preflight import preflight
from distill.text import R1_TEMPERATURE, R1_TOP_P
from distill.train.card import write_card
from distill.train.corpora import corpora
from distill.train.data import check_template, write_report
from distill.train.datacache import training_data
from distill.train.kd import build_kd_trainer
from distill.train.launch import Machines, launch
from distill.train.recipe import StudentRecipe, load_student_recipe
from distill.train.sft import (
    base_path,
    build_trainer,
    check_report_to,
    load_model,
    load_tokenizer,
    packing_mode,
)

log = logging.getLogger(__name__)
METRICS = "train_metrics.json"


def resolve_recipe(recipe_or_path: StudentRecipe | str | Path, settings: list[str] | None = None) -> StudentRecipe:
    """A recipe object from a path or shipped name, or a loaded recipe, with `KEY=VALUE` settings applied."""
    if isinstance(recipe_or_path, StudentRecipe):
        return with_settings(recipe_or_path, settings, recipe_or_path.path or "<recipe>")
    return load_student_recipe(recipe_or_path, settings)


def check_devices(recipe: StudentRecipe) -> None:
    """Refuse FSDP/ZeRO-3 where they cannot be active: accelerate would silently run plain DDP on CPU."""
    import torch

    if recipe.distributed != "ddp" and not torch.cuda.is_available():
        raise ConfigError(
            f"{recipe.path}: distributed: {recipe.distributed} needs CUDA devices, and none is visible; "
            "accelerate would silently fall back to DDP on CPU. Use distributed: ddp (or a GPU machine)."
        )


def check_kernels(recipe: StudentRecipe) -> None:
    """Refuse `use_liger_kernel` where Liger cannot run: not installed, or no CUDA device (its kernels are
    Triton kernels)."""
    import importlib.util

    import torch

    if not recipe.use_liger_kernel:
        return
    if importlib.util.find_spec("liger_kernel") is None:
        raise ConfigError(f"{recipe.path}: key 'use_liger_kernel': liger-kernel is not installed "
                          "(pip install liger-kernel), or set use_liger_kernel: false")
    if not torch.cuda.is_available():
        raise ConfigError(f"{recipe.path}: key 'use_liger_kernel': Liger's kernels need a CUDA device, and none is visible")


def last_checkpoint(out_dir: Path) -> str | None:
    """The newest complete OUT/checkpoint-N (its trainer_state.json is written last), or None; a checkpoint
    torn by a kill during saving is skipped, so the run resumes from the one before."""
    if not out_dir.is_dir():
        return None
    steps = sorted(
        (int(p.name.split("-", 1)[1]), p) for p in out_dir.glob("checkpoint-*") if p.name.split("-", 1)[1].isdigit()
    )
    for _, path in reversed(steps):
        if (path / "trainer_state.json").is_file():
            return str(path)
        log.warning("skipping %s: incomplete (no trainer_state.json), probably killed while saving", path)
    return None


def checkpoint_step(checkpoint: str | Path) -> int:
    """The optimizer step of OUT/checkpoint-N: N."""
    return int(Path(checkpoint).name.split("-")[-1])


def reached_max_steps(trainer: Any, checkpoint: str | None) -> bool:
    """Whether the checkpoint a run would resume from is already at the trainer's max_steps."""
    return checkpoint is not None and 0 < trainer.args.max_steps <= checkpoint_step(checkpoint)


def train_or_finish(trainer: Any, checkpoint: str | None) -> Any:
    """`trainer.train(resume_from_checkpoint=checkpoint)`, except for a run whose checkpoint already reached
    max_steps: Hugging Face's Trainer resumed there still takes one more step (it checks the limit after a
    step), so running a finished command again would write checkpoint-N+1 and change its result. Such a run
    loads the checkpoint's weights and state instead and trains nothing. Returns the TrainOutput."""
    if not reached_max_steps(trainer, checkpoint):
        return trainer.train(resume_from_checkpoint=checkpoint)
    from transformers.trainer_callback import TrainerState
    from transformers.trainer_utils import TrainOutput

    log.info("%s reached max_steps (%d) already: nothing to train", checkpoint, trainer.args.max_steps)
    trainer._load_from_checkpoint(checkpoint)  # Trainer's own loader (full weights or a PEFT adapter)
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    # The exact mean loss of the run is not in a checkpoint; the mean of the logged losses stands for it.
    return TrainOutput(trainer.state.global_step, sum(losses) / len(losses) if losses else float("nan"), {})


def r1_generation_config(recipe: StudentRecipe, tokenizer: Any) -> Any:
    """R1's sampling defaults (temperature 0.6, top-p 0.95) stopping at the tokenizer's (and template's) EOS."""
    from transformers import GenerationConfig

    return GenerationConfig(
        do_sample=True, temperature=R1_TEMPERATURE, top_p=R1_TOP_P, max_new_tokens=recipe.max_length,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
    )


def save_outputs(trainer: Any, recipe: StudentRecipe, tokenizer: Any, out_dir: Path, data_dir: Path,
                 report: Any, metrics: dict[str, Any]) -> None:
    """The final model, tokenizer, template, generation config, card and metrics (rank 0 only)."""
    trainer.save_model(str(out_dir))  # safetensors; for peft models the adapter
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "chat_template.jinja").write_text(tokenizer.chat_template, encoding="utf-8")
    r1_generation_config(recipe, tokenizer).save_pretrained(str(out_dir))
    atomic_write_text(out_dir / "recipe.yaml", yaml.safe_dump(dataclasses.asdict(recipe), sort_keys=False))
    atomic_write_json(out_dir / "train_metrics.json", metrics)
    write_card(out_dir, recipe, data_dir, report, metrics)


def train(
    recipe_or_path: StudentRecipe | str | Path,
    data_dir: str | Path | None,
    out_dir: str | Path,
    max_steps: int | None = None,
    num_processes: int | None = None,
    settings: list[str] | None = None,
    force: bool = False,
    machines: Machines | None = None,
) -> dict[str, Any]:
    """Fine-tune the recipe's student (a loaded recipe, a path or a shipped name, with `KEY=VALUE`
    `settings` on top) on DATA_DIR/corpus.jsonl (or, with `data_dir` None, the recipe's `data:` corpora) into
    OUT; returns the summary (OUT/train_metrics.json, with `out_dir`). The corpora are tokenized once into a
    cached Arrow dataset (distill/train/datacache.py) or, with `streaming: true`, read as training goes.

    Resumes from the newest OUT/checkpoint-N when there is one (its step count continues); with
    `num_processes` > 1 (or the recipe's; all processes over all machines) or several `machines`, relaunches
    itself under torchrun (or accelerate for FSDP/ZeRO-3). First, the memory plan checks that the run fits
    its hardware (distill.plan.preflight) and refuses it if not, unless `force`.
    """
    recipe = resolve_recipe(recipe_or_path, settings)
    out = Path(out_dir).resolve()
    sources = corpora(recipe, data_dir)  # checked before anything is launched
    data = Path(data_dir).resolve() if data_dir is not None else None
    if recipe.streaming and max_steps is None:
        raise ConfigError(f"{recipe.path}: key 'streaming': a streamed corpus has no known length; pass --max-steps")
    machines = machines or Machines()
    check_devices(recipe)
    check_kernels(recipe)
    check_report_to(recipe, [recipe.report_to] if isinstance(recipe.report_to, str) else list(recipe.report_to))
    processes = num_processes or recipe.num_processes or 1
    if processes % machines.count:
        raise ConfigError(f"--num-processes {processes} is not a multiple of --num-machines {machines.count}")
    if "LOCAL_RANK" not in os.environ:
        preflight(recipe, processes, machines.count, force=force)
    if recipe.global_batch_size and "LOCAL_RANK" not in os.environ:
        effective = recipe.per_device_train_batch_size * recipe.gradient_accumulation_steps * processes
        if effective != recipe.global_batch_size:
            log.warning("global batch is %d (%d x %d x %d processes), not the recipe's %d; "
                        "adjust gradient_accumulation_steps to keep it", effective,
                        recipe.per_device_train_batch_size, recipe.gradient_accumulation_steps, processes,
                        recipe.global_batch_size)
    if (processes > 1 or machines.count > 1) and "LOCAL_RANK" not in os.environ:
        launch(recipe, data, out, processes, max_steps, machines)
        return {**json.loads((out / METRICS).read_text(encoding="utf-8")), "out_dir": str(out)}

    rank0 = int(os.environ.get("RANK", "0")) == 0
    out.mkdir(parents=True, exist_ok=True)
    base = base_path(recipe, out) if rank0 or recipe.model != "tiny" else str(out / "base")
    if recipe.model == "tiny" and not rank0:
        _wait_for(out / "base" / "config.json")
    tokenizer = load_tokenizer(recipe, base)
    check_template(tokenizer, recipe.path or "<recipe>")
    # Tokenized once into the cache (or streamed); for objective kd, the teacher's ids and top-K (kd_data.py).
    prepared = training_data(recipe, tokenizer, sources, out, packing_mode(recipe))
    dataset, report, records = prepared.dataset, prepared.report, prepared.records
    if rank0 and not recipe.streaming:
        write_report(report, out)
    model = load_model(recipe, base, tokenizer)
    # The EOS agrees everywhere: model config, generation config (also in every checkpoint), tokenizer, template.
    model.config.eos_token_id = tokenizer.eos_token_id
    model.generation_config = r1_generation_config(recipe, tokenizer)
    if records is not None:
        trainer = build_kd_trainer(recipe, model, tokenizer, dataset, records, out, max_steps, prepared.packed)
    else:
        trainer = build_trainer(recipe, model, tokenizer, dataset, out, max_steps, prepared.packed)
    resume = last_checkpoint(out)
    if resume:
        log.info("resuming from %s", resume)
    if reached_max_steps(trainer, resume) and (out / METRICS).is_file():
        previous = json.loads((out / METRICS).read_text(encoding="utf-8"))
        if previous.get("global_step") == checkpoint_step(resume):  # finished, outputs and all
            log.info("%s finished at step %d already: nothing to train or write", out, previous["global_step"])
            return {**previous, "out_dir": str(out)}
    result = train_or_finish(trainer, resume)
    metrics = {
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "log_history": [h for h in trainer.state.log_history if "loss" in h],
        "resumed_from": resume,
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
        "mode": recipe.mode,
        "quantization": "nf4" if getattr(model, "is_loaded_in_4bit", False) else None,
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "data": prepared.info,
        **{k: v for k, v in result.metrics.items() if isinstance(v, (int, float))},
    }
    if trainer.is_world_process_zero():
        first = sources[0].path  # the card describes --data, or the first corpus of the recipe's data:
        card_data = data or (first.parent if first.name == "corpus.jsonl" else first)
        save_outputs(trainer, recipe, tokenizer, out, card_data, report, metrics)
    trainer.accelerator.wait_for_everyone()
    return {**metrics, "out_dir": str(out)}


def _wait_for(path: Path, timeout: float = 300.0) -> None:
    """Wait until rank 0 has written `path` (the tiny base), so all ranks load the same weights."""
    import time

    deadline = time.monotonic() + timeout
    while not path.is_file():
        if time.monotonic() > deadline:
            raise ConfigError(f"{path}: rank 0 did not write the tiny base model within {timeout:.0f}s")
        time.sleep(0.2)
    time.sleep(0.5)  # the save writes config.json first; give the weights a moment
