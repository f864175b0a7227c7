"""The on-policy distillation recipe: the student, the teacher, the prompts and the trainer's knobs, loaded
from `students/opd/*.yaml` with `distill.config` (unknown or mistyped keys fail with the file and key named)
and `GROUP.KEY=VALUE` settings, as `distill reinforce` loads its GRPO recipes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from distill.config import apply_settings, from_mapping, read_yaml
from distill.errors import ConfigError
from distill.paths import resolve
from distill.reinforce.recipe import PromptSettings, recipe_file


@dataclass
class OPDSettings:
    """The trainer's knobs; where TRL's DistillationConfig has the same knob, the same name.

    `loss`:
    - `reverse_kl`: TRL's DistillationTrainer as it is (generalised JSD with beta = 1, fully on-policy): the
      exact reverse KL between the student's and the teacher's whole next-token distributions at every
      sampled position. Needs a local teacher (its whole distribution).
    - `sampled`: the per-token policy-gradient form (Thinking Machines' on-policy distillation): advantage =
      teacher logprob - student logprob of the sampled token, loss = -advantage x student logprob. Needs only
      the sampled tokens' teacher logprobs, so a vLLM server can be the teacher; `reward_weight` mixes in the
      verifier's reward (its deviation from the batch mean, added to every token's advantage).
    """

    loss: Literal["reverse_kl", "sampled"] = "reverse_kl"
    learning_rate: float = 1e-6
    lr_scheduler_type: str = "constant"
    warmup_steps: float = 0.0  # steps, or a fraction of all steps when below 1
    max_grad_norm: float = 1.0
    max_completion_length: int = 4096
    temperature: float = 1.0  # the student's sampling temperature (and TRL's loss temperature)
    top_p: float = 1.0
    per_device_train_batch_size: int = 8  # prompts per step, one completion each
    gradient_accumulation_steps: int = 1
    max_steps: int = -1
    num_train_epochs: float = 1.0
    save_steps: int = 50
    save_total_limit: int | None = 2
    logging_steps: int = 1
    seed: int = 42
    bf16: bool = False
    gradient_checkpointing: bool = False
    reward_weight: float = 0.0  # `sampled` only: weight of the verifier's accuracy reward in the advantage
    generation: Literal["transformers", "vllm"] = "transformers"  # how the student samples (vLLM needs a GPU)
    report_to: str = "none"


@dataclass
class ServerSettings:
    """For a teacher served by vLLM: how the token scores are asked for."""

    sequences_per_request: int = 8
    timeout: float = 600.0
    max_retries: int = 3


@dataclass
class OPDRecipe:
    """A whole on-policy distillation recipe."""

    model: str = ""  # the student checkpoint; `--student` overrides it
    teacher: str = ""  # a teacher profile (name or path) or a checkpoint; `--teacher` overrides it
    trust_remote_code: bool = False
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    teacher_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    problems: str | None = None  # a shipped set name or a problem file; `--problems` overrides it
    limit: int | None = None
    prompt: PromptSettings = field(default_factory=PromptSettings)
    opd: OPDSettings = field(default_factory=OPDSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    # What each pair needs (teacher memory, logprob storage) and what is unverified: read by people, not code.
    notes: list[str] = field(default_factory=list)
    path: str | None = None  # the recipe file (set by the loader)

    def __post_init__(self) -> None:
        if self.opd.reward_weight and self.opd.loss != "sampled":
            raise ValueError("opd.reward_weight: the verifier reward mixes into the sampled loss only (opd.loss: sampled)")
        if self.opd.reward_weight < 0:
            raise ValueError(f"opd.reward_weight: expected a weight >= 0, got {self.opd.reward_weight}")
        if not self.opd.temperature > 0:
            raise ValueError(f"opd.temperature: expected a positive temperature, got {self.opd.temperature}")

    def file(self, value: str) -> Path:
        """A file the recipe names (a prompt template, a system prompt), found as GRPO recipes find theirs."""
        return recipe_file(self.path, value)


def load_opd_recipe(path: str | Path, settings: list[str] | None = None) -> OPDRecipe:
    """Load an on-policy distillation recipe (a path, or a shipped name such as `tiny` for students/opd/tiny.yaml),
    then apply `GROUP.KEY=VALUE` settings (`--set opd.learning_rate=1e-5`)."""
    found = resolve(path, kind="opd", what="on-policy distillation recipe")
    data = read_yaml(found)
    if "path" in data:
        raise ConfigError(f"{found}: key 'path' is set by the loader, not the recipe")
    data["path"] = str(found.resolve())
    return from_mapping(OPDRecipe, apply_settings(data, settings), str(found))


def recipe_from_dict(data: dict[str, Any], where: str = "<recipe>") -> OPDRecipe:
    """Build a recipe from a mapping (tests and Python callers).

    >>> recipe_from_dict({"opd": {"loss": "sampled", "reward_weight": 0.5}}).opd.reward_weight
    0.5
    >>> recipe_from_dict({"opd": {"reward_weight": 0.5}}, "x.yaml")
    Traceback (most recent call last):
    ...
    distill.errors.ConfigError: x.yaml: opd.reward_weight: the verifier reward mixes into the sampled loss only (opd.loss: sampled)
    """
    return from_mapping(OPDRecipe, data, where)
