"""The GRPO recipe: which model to reinforce, how prompts look, how rewards are weighted and the
GRPO knobs, loaded from `students/rl/*.yaml` with `distill.config` (unknown or mistyped keys fail
with the file and key named).

The defaults are the DeepSeek-R1 values where the paper gives them; each recipe file says where
its numbers come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from distill.config import apply_settings, from_mapping, read_yaml
from distill.errors import ConfigError
from distill.paths import find, resolve

AnswerFormat = Literal["after_think", "answer_tags"]


def recipe_file(recipe_path: str | None, value: str) -> Path:
    """A file an RL or on-policy recipe names (a prompt template, a system prompt), by the search order of
    `distill.paths.find`, starting at the recipe's folder; missing, an error naming the recipe."""
    found = find(value, relative_to=Path(recipe_path).parent if recipe_path else None)
    if found is None:
        raise ConfigError(f"{recipe_path or '<recipe>'}: {value}: no such file")
    return found


@dataclass
class PromptSettings:
    """How a problem becomes a prompt, and where the final answer sits in a completion."""

    # "chat": the model's own chat template (R1 after cold-start SFT, R1-distill students); or a path
    # to a text file with a `{prompt}` placeholder, used as a plain completion prompt (R1-Zero on a
    # base model, students/templates/r1_zero.txt).
    template: str = "chat"
    # Where the answer sits, read by the verifiers: after `</think>`, or inside `<answer>` tags.
    answer_format: AnswerFormat = "after_think"
    # Whether the chat template's generation prompt opens `<think>\n` (passed as the template kwarg
    # `open_think`; templates that always open it, like R1-distill's, ignore the kwarg).
    open_think: bool = True
    # A path to a text file holding a system prompt for chat templates (R1 uses none).
    system_prompt: str | None = None
    # Append distill.text.MATH_PROMPT_SUFFIX to math prompts (R1's evaluation protocol).
    math_suffix: bool = True


@dataclass
class RewardSettings:
    """Reward weights (TRL's `reward_weights`, in the order accuracy, format, language) and settings."""

    accuracy: float = 1.0
    format: float = 0.0
    language: float = 0.0
    # R1's language-consistency reward: the share of the reasoning in this language.
    language_target: str = "en"
    # Processes verifying code completions in the sandbox (1 = in this process).
    workers: int = 1
    # Run code completions WITHOUT the bubblewrap sandbox (a policy can then learn to forge its reward).
    unsafe_no_sandbox: bool = False


@dataclass
class GRPOSettings:
    """GRPO's knobs, passed to TRL's GRPOConfig under the same names."""

    num_generations: int = 16  # group size G
    beta: float = 0.001  # KL coefficient
    epsilon: float = 10.0  # ratio clip
    epsilon_high: float | None = None  # DAPO's clip-higher; None = symmetric
    learning_rate: float = 3e-6
    lr_scheduler_type: str = "constant"
    warmup_steps: float = 0.0  # steps, or a fraction of all steps when below 1
    max_grad_norm: float = 1.0
    max_completion_length: int = 32768
    temperature: float = 1.0
    top_p: float = 1.0
    loss_type: str = "grpo"  # grpo | dapo | dr_grpo | bnpo
    scale_rewards: str = "group"  # group | batch | none (Dr. GRPO: none)
    mask_truncated_completions: bool = False
    # Train only on the tokens whose entropy is in this top share of the batch (1.0 = every token);
    # Wang et al. 2025 ("Beyond the 80/20 rule") keep 0.2: the forking tokens where the policy is unsure.
    top_entropy_quantile: float = 1.0
    num_iterations: int = 1
    per_device_train_batch_size: int = 16  # completions per device per step; a multiple of G
    gradient_accumulation_steps: int = 1
    steps_per_generation: int | None = None  # optimiser steps fed by one rollout (TRL default: accumulation)
    sync_ref_model: bool = False  # R1 replaced the reference model every 400 steps
    ref_model_sync_steps: int = 400
    max_steps: int = -1
    num_train_epochs: float = 1.0
    save_steps: int = 100
    save_total_limit: int | None = 2
    logging_steps: int = 1
    seed: int = 42
    bf16: bool = False
    gradient_checkpointing: bool = False
    # "auto": vLLM when it is importable and a GPU is present, transformers otherwise.
    generation: Literal["auto", "vllm", "transformers"] = "auto"
    vllm_gpu_memory_utilization: float = 0.3
    # Extra keyword arguments for generation (GenerationConfig or vLLM SamplingParams), e.g. sequence_bias.
    generation_kwargs: dict[str, Any] | None = None
    log_completions: bool = False
    report_to: str = "none"


@dataclass
class GRPORecipe:
    """A whole RL recipe: the model, its prompts, the rewards and GRPO's settings."""

    model: str = ""  # a checkpoint directory or hub id; `--student CHECKPOINT` overrides it
    trust_remote_code: bool = False
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    problems: str | None = None  # a shipped set name or a problem file; `--problems` overrides it
    limit: int | None = None  # use only the first N problems
    prompt: PromptSettings = field(default_factory=PromptSettings)
    rewards: RewardSettings = field(default_factory=RewardSettings)
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    path: str | None = None  # the recipe file (set by the loader); its folder is where relative paths start

    def file(self, value: str) -> Path:
        """A file the recipe names (a prompt template, a system prompt); see `recipe_file`."""
        return recipe_file(self.path, value)

    def __post_init__(self) -> None:
        g = self.grpo
        if g.num_generations < 2:
            raise ValueError("grpo.num_generations must be at least 2 (GRPO's baseline is the group mean)")
        if g.per_device_train_batch_size % g.num_generations:
            raise ValueError(
                f"grpo.per_device_train_batch_size ({g.per_device_train_batch_size}) must be a multiple of "
                f"grpo.num_generations ({g.num_generations})"
            )
        if not any((self.rewards.accuracy, self.rewards.format, self.rewards.language)):
            raise ValueError("rewards: every weight is 0, so there is nothing to learn from")


def load_grpo_recipe(path: str | Path, settings: list[str] | None = None) -> GRPORecipe:
    """Load a GRPO recipe (a path, or a shipped name such as `tiny` for students/rl/tiny.yaml), then apply
    `GROUP.KEY=VALUE` settings (as `--set` gives them)."""
    found = resolve(path, kind="rl", what="GRPO recipe")
    data = read_yaml(found)
    if "path" in data:
        raise ConfigError(f"{found}: key 'path' is set by the loader, not the recipe")
    data["path"] = str(found.resolve())
    return from_mapping(GRPORecipe, apply_settings(data, settings), str(found))


def recipe_from_dict(data: dict[str, Any], where: str = "<recipe>") -> GRPORecipe:
    """Build a recipe from a mapping (tests and Python callers).

    >>> recipe_from_dict({"model": "m", "grpo": {"num_generations": 4, "per_device_train_batch_size": 8}}).grpo.beta
    0.001
    >>> recipe_from_dict({"grpo": {"num_generations": 3, "per_device_train_batch_size": 8}}, "x.yaml")
    Traceback (most recent call last):
    ...
    distill.errors.ConfigError: x.yaml: grpo.per_device_train_batch_size (8) must be a multiple of grpo.num_generations (3)
    """
    return from_mapping(GRPORecipe, data, where)
