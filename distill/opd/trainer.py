"""`opd()`: on-policy distillation on TRL's DistillationTrainer (TRL 1.16's stable distillation trainer, GKD's
on-policy distillation, while GKDTrainer itself sits in trl.experimental; fully on-policy, beta = 1 is the
reverse KL).

The student samples a completion for each prompt; the teacher grades every sampled token. With `opd.loss:
reverse_kl` the trainer is TRL's own: the exact reverse KL between the two whole next-token distributions
(the teacher must be local). With `opd.loss: sampled` one method is replaced, `_compute_loss`: the teacher's
logprob of each sampled token (a local forward pass, or a vLLM server's prompt logprobs) against the
student's gives the per-token advantage teacher - student, and the loss is the policy gradient
-advantage x student logprob (mixed, optionally, with the verifier's reward). Both run on CPU with the tiny
models (tests/opd). Generation, batching, optimiser, schedule, checkpoints and resume are TRL's.

OUT/metrics.jsonl gets one row per logged step: `reverse_kl` (per token: exact for `reverse_kl`, the sampled
estimate student - teacher logprob for `sampled`), `completion_length`, `rollout_tokens` (tokens sampled for
the step), `accuracy` (verified-correct share of the step's completions, where the verifier can judge) and
TRL's own metrics. A killed run resumes from its last complete checkpoint; rows past it are dropped first.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

from distill import faults
from distill.atomic import atomic_write_json
from distill.config import with_settings
from distill.errors import ConfigError
from distill.opd.recipe import OPDRecipe, load_opd_recipe
from distill.opd.teacher import OPDTeacher, ServerScorer, resolve_opd_teacher
from distill.problems import fingerprint
from distill.reinforce.grpo import (
    build_prompts,
    load_tokenizer,
    metrics_log,
    think_in_prompt,
    training_problems,
    truncate_metrics,
)
from distill.reinforce.rewards import RewardSet
from distill.train.core import checkpoint_step, last_checkpoint, train_or_finish
from distill.train.kd_data import check_same_tokens, load_plain_tokenizer

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "opd.json"


def opd_trainer_class() -> type:
    """TRL's DistillationTrainer with metrics added and, for `opd.loss: sampled`, `_compute_loss` replaced (built
    in a function: TRL loads when a run starts, not on import)."""
    import torch
    from trl import DistillationTrainer

    class OPDTrainer(DistillationTrainer):  # type: ignore[misc]
        def __init__(self, *args: Any, opd_loss: str, rewards: RewardSet, reward_weight: float,
                     scorer: ServerScorer | None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.opd_loss = opd_loss
            self.rewards = rewards
            self.reward_weight = reward_weight
            self.scorer = scorer

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            output = super()._generate_and_score_completions(inputs)
            ids = [row[mask.bool()].tolist() for row, mask in zip(output["completion_ids"].cpu(),
                                                                  output["completion_mask"].cpu(), strict=True)]
            texts = self.processing_class.batch_decode(ids, skip_special_tokens=True)
            verdicts = self.rewards.accuracy(texts, [x["problem_id"] for x in inputs], ids)
            if self.model.training:
                judged = [v for v in verdicts if v is not None]
                if judged:
                    self._metrics["train"]["accuracy"].append(sum(judged) / len(judged))
                self._metrics["train"]["completion_length"].append(sum(map(len, ids)) / max(len(ids), 1))
                self._metrics["train"]["rollout_tokens"].append(float(sum(map(len, ids))))
            output["reward"] = torch.tensor([math.nan if v is None else v for v in verdicts], dtype=torch.float32,
                                            device=output["completion_ids"].device)
            return output

        def _compute_loss(self, unwrapped_student: Any, inputs: dict[str, Any], num_items_in_batch: Any) -> Any:
            if self.opd_loss == "reverse_kl":
                loss, entropy_sum, n_valid = super()._compute_loss(unwrapped_student, inputs, num_items_in_batch)
                if self.model.training and int(n_valid) > 0:
                    scale = float(num_items_in_batch) if num_items_in_batch is not None else float(n_valid)
                    self._metrics["train"]["reverse_kl"].append(loss.item() * scale / int(n_valid))
                return loss, entropy_sum, n_valid
            return self._sampled_loss(unwrapped_student, inputs, num_items_in_batch)

        def _sampled_loss(self, student: Any, inputs: dict[str, Any], num_items_in_batch: Any) -> Any:
            prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
            completion_ids, mask = inputs["completion_ids"], inputs["completion_mask"]
            input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
            attention_mask = torch.cat([prompt_mask, mask], dim=1)
            width = completion_ids.size(1)
            logits = student(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                             logits_to_keep=width + 1).logits[:, :-1].float()
            student_all = torch.log_softmax(logits / self.temperature, dim=-1)
            student_lp = student_all.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
            teacher_lp = self._teacher_logprobs(input_ids, attention_mask, prompt_ids.size(1), prompt_mask, mask)
            valid = mask.bool()
            advantage = (teacher_lp - student_lp).detach()
            if self.reward_weight:
                reward = inputs["reward"].to(advantage.device)
                known = ~torch.isnan(reward)
                centred = torch.where(known, reward - reward[known].mean() if known.any() else reward, torch.zeros_like(reward))
                advantage = advantage + self.reward_weight * centred.unsqueeze(1)
            n_valid = valid.sum()
            denominator = num_items_in_batch if num_items_in_batch is not None else n_valid.clamp(min=1)
            loss = -(advantage * student_lp * valid).sum() / denominator
            entropy_sum = -(student_all.exp() * student_all).sum(-1)[valid].sum().detach()
            if self.model.training and int(n_valid) > 0:
                self._metrics["train"]["reverse_kl"].append(((student_lp - teacher_lp)[valid].mean()).item())
            return loss, entropy_sum, n_valid

        def _teacher_logprobs(self, input_ids: Any, attention_mask: Any, prompt_width: int, prompt_mask: Any,
                              mask: Any) -> Any:
            """[B, C] teacher logprobs of the completion tokens (0 at padding)."""
            width = input_ids.size(1) - prompt_width
            if self.scorer is None:
                self.teacher_model.eval()
                with torch.no_grad():
                    logits = self.teacher_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                                                logits_to_keep=width + 1).logits[:, :-1].float()
                    out = torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, prompt_width:].unsqueeze(-1))
                return out.squeeze(-1)
            sequences, starts = [], []
            for row in range(input_ids.size(0)):
                prompt = input_ids[row, :prompt_width][prompt_mask[row].bool()].tolist()
                completion = input_ids[row, prompt_width:][mask[row].bool()].tolist()
                sequences.append(prompt + completion)
                starts.append(len(prompt))
            scores = self.scorer.score(sequences, starts)
            out = torch.zeros(input_ids.size(0), width, dtype=torch.float32, device=input_ids.device)
            for row, values in enumerate(scores):
                out[row, : len(values)] = torch.tensor(values, dtype=torch.float32)
            return out

    return OPDTrainer


def fault_callback() -> Any:
    """A callback that reaches the fault point `opd-step` after each optimiser step (crash-and-resume tests)."""
    from transformers import TrainerCallback

    class StepFault(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            faults.point("opd-step")

    return StepFault()


def opd_config(recipe: OPDRecipe, out_dir: Path) -> Any:
    """TRL's DistillationConfig from the recipe (fully on-policy; beta = 1, the reverse KL)."""
    import torch
    from trl import DistillationConfig

    g = recipe.opd
    dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16}[recipe.dtype]
    extra: dict[str, Any] = {}
    if recipe.prompt.template == "chat":
        extra["chat_template_kwargs"] = {"open_think": recipe.prompt.open_think}
    return DistillationConfig(
        output_dir=str(out_dir), beta=1.0, temperature=g.temperature, top_p=g.top_p,
        learning_rate=g.learning_rate, lr_scheduler_type=g.lr_scheduler_type, warmup_steps=g.warmup_steps,
        max_grad_norm=g.max_grad_norm, max_completion_length=g.max_completion_length,
        per_device_train_batch_size=g.per_device_train_batch_size, gradient_accumulation_steps=g.gradient_accumulation_steps,
        max_steps=g.max_steps, num_train_epochs=g.num_train_epochs, save_strategy="steps", save_steps=g.save_steps,
        save_total_limit=g.save_total_limit, logging_steps=g.logging_steps, seed=g.seed, bf16=g.bf16,
        gradient_checkpointing=g.gradient_checkpointing, use_vllm=g.generation == "vllm",
        use_cpu=not torch.cuda.is_available(), report_to=g.report_to, disable_dropout=True,
        model_init_kwargs={"dtype": dtype, "trust_remote_code": recipe.trust_remote_code},
        trust_remote_code=recipe.trust_remote_code, **extra,
    )


def load_teacher_model(teacher: OPDTeacher, recipe: OPDRecipe) -> Any:
    """The local teacher in the recipe's teacher dtype, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16}[recipe.teacher_dtype]
    return AutoModelForCausalLM.from_pretrained(teacher.checkpoint, dtype=dtype,
                                                trust_remote_code=recipe.trust_remote_code).eval()


def opd(
    recipe_or_path: OPDRecipe | str | Path,
    out_dir: str | Path,
    student: str | None = None,
    teacher: str | None = None,
    problems: str | None = None,
    max_steps: int | None = None,
    limit: int | None = None,
    settings: list[str] | None = None,
) -> dict[str, Any]:
    """Distil `teacher` into `student` on-policy; `out_dir` then holds the final student. Returns the summary
    (out_dir/opd.json, with `out_dir`).

    `recipe_or_path` is a loaded recipe, a path or a shipped name (`tiny`); `student`, `teacher` and
    `problems` override the recipe's, as do `settings` (`GROUP.KEY=VALUE`). A run whose `out_dir` holds
    checkpoints resumes from the last complete one.
    """
    from datasets import Dataset

    if isinstance(recipe_or_path, OPDRecipe):
        recipe = with_settings(recipe_or_path, settings, recipe_or_path.path or "<recipe>")
    else:
        recipe = load_opd_recipe(recipe_or_path, settings)
    if max_steps is not None:
        recipe = dataclasses.replace(recipe, opd=dataclasses.replace(recipe.opd, max_steps=max_steps))
    student_path = student or recipe.model
    if not student_path:
        raise ConfigError("no student: give --student CHECKPOINT or set `model` in the recipe")
    if not (Path(student_path) / "config.json").is_file():
        raise ConfigError(f"--student {student_path}: not a local checkpoint (no config.json)")
    teacher_name = teacher or recipe.teacher
    if not teacher_name:
        raise ConfigError("no teacher: give --teacher NAME|teachers/X.yaml|CHECKPOINT or set `teacher` in the recipe")
    source = problems or recipe.problems
    problem_list = training_problems(source, limit if limit is not None else recipe.limit)

    resolved = resolve_opd_teacher(teacher_name, recipe.server)
    if resolved.server is not None and recipe.opd.loss == "reverse_kl":
        raise ConfigError(f"--teacher {teacher_name}: opd.loss reverse_kl compares whole distributions, which a served "
                          "teacher does not send; use opd.loss=sampled (the sampled tokens' logprobs)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(student_path, recipe.trust_remote_code)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # The teacher scores the student's ids: one vocabulary, checked id by id before any step.
    assert resolved.tokenizer is not None
    check_same_tokens(load_plain_tokenizer(resolved.tokenizer), tokenizer, range(len(tokenizer)),
                      f"--teacher {teacher_name} and --student {student_path}")
    prompts = build_prompts(problem_list, recipe)  # type: ignore[arg-type]  (the same prompt settings as GRPO)
    opened = think_in_prompt(prompts[0], tokenizer, recipe.prompt.open_think)
    eos = tokenizer.eos_token_id
    rewards = RewardSet({p.id: p for p in problem_list}, {"accuracy": 1.0}, answer_format=recipe.prompt.answer_format,
                        think_in_prompt=opened, eos_token_ids=[eos] if eos is not None else [])
    dataset = Dataset.from_list([{"prompt": pr, "problem_id": p.id} for pr, p in zip(prompts, problem_list, strict=True)])
    teacher_model = load_teacher_model(resolved, recipe) if resolved.checkpoint is not None else None
    trainer = opd_trainer_class()(
        model=student_path, teacher_model=teacher_model, args=opd_config(recipe, out), train_dataset=dataset,
        processing_class=tokenizer, callbacks=[metrics_log(out / METRICS_FILE), fault_callback()],
        opd_loss=recipe.opd.loss, rewards=rewards, reward_weight=recipe.opd.reward_weight, scorer=resolved.server,
    )
    last = last_checkpoint(out)
    if last is not None:
        step = checkpoint_step(last)
        log.info("resuming from %s (step %d)", last, step)
        truncate_metrics(out / METRICS_FILE, step)
    log.info("on-policy distillation of %s into %s: %d problems, loss %s", resolved.name, student_path,
             len(problem_list), recipe.opd.loss)
    started = time.time()
    try:
        train_or_finish(trainer, last)
    finally:
        if resolved.server is not None:
            resolved.server.close()
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    history = [h for h in trainer.state.log_history if "reverse_kl" in h]
    summary = {
        "student": Path(student_path).name, "teacher": resolved.name, "loss": recipe.opd.loss,
        "problems": {"source": Path(str(source)).name, "count": len(problem_list), "fingerprint": fingerprint(problem_list)},
        "think_in_prompt": opened, "steps": trainer.state.global_step, "resumed_from": Path(last).name if last else None,
        "wall_s": round(time.time() - started, 2), "last_metrics": history[-1] if history else {},
        "recipe": dataclasses.asdict(recipe),
    }
    atomic_write_json(out / SUMMARY_FILE, summary)
    return {**summary, "out_dir": str(out)}
