"""Student recipes: one YAML file per student (students/*.yaml) loaded into `StudentRecipe`.

A recipe names the base model (a local checkpoint, a hub id, or `tiny` for a fresh tiny random
model built from the `tiny:` group), the chat template file, the mode (full, LoRA, QLoRA) and the
SFT hyper-parameters. Relative paths in a recipe resolve against the recipe file's directory.
Validation never downloads: a hub model must state its declared context in `model_max_context`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from distill.config import apply_settings, from_mapping, read_yaml
from distill.errors import ConfigError
from distill.paths import find, local_or_id, resolve


@dataclass
class TinySettings:
    """Sizes of the fresh tiny random model that `model: tiny` builds (distill.toy.model)."""

    architecture: Literal["qwen2", "llama"] = "qwen2"
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    num_kv_heads: int = 1
    max_positions: int = 2048
    seed: int = 0


@dataclass
class LoraSettings:
    """LoRA adapter settings (also used by QLoRA): rank, alpha, dropout and the target modules."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"


@dataclass
class HardwareSettings:
    """The machines a recipe is sized for: `distill plan` and `distill train`'s preflight check that it fits
    them (None: not stated; the preflight then uses the GPUs it detects)."""

    gpus_per_node: int | None = None
    gpu_memory_gib: float | None = None
    nodes: int = 1

    def stated(self) -> bool:
        """Whether the recipe states its GPUs."""
        return self.gpus_per_node is not None and self.gpu_memory_gib is not None


@dataclass
class KDSettings:
    """Offline logit distillation (`objective: kd`): the divergence to the teacher's stored top-K and its knobs
    (distill/train/kd.py says how the mass beyond the top K is handled)."""

    loss: Literal["forward_kl", "reverse_kl", "jsd"] = "forward_kl"
    beta: float = 0.5  # the JSD's mixture weight of the teacher, 0 < beta < 1 (TRL's GKD convention)
    temperature: float = 1.0  # softens both distributions; the loss is scaled by temperature^2
    alpha: float = 0.0  # weight of cross-entropy on the teacher's tokens: loss = alpha CE + (1 - alpha) KD
    top_k: int = 20  # how many of the stored alternatives to use (at most the K the run stored)
    teacher_tokenizer: str | None = None  # the teacher's tokenizer folder (default: the one the run's manifest names)

    def __post_init__(self) -> None:
        if self.loss == "jsd" and not 0 < self.beta < 1:
            raise ValueError(f"kd.beta: expected 0 < beta < 1 for loss jsd, got {self.beta}")
        if not self.temperature > 0:
            raise ValueError(f"kd.temperature: expected a positive temperature, got {self.temperature}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"kd.alpha: expected a weight in [0, 1], got {self.alpha}")
        if self.top_k < 1:
            raise ValueError(f"kd.top_k: expected at least 1, got {self.top_k}")


def check_data(entries: list[dict[str, Any]]) -> None:
    """Refuse a `data:` list that is not `[{path, weight}]` with finite positive weights, naming the entry."""
    import math

    for i, entry in enumerate(entries):
        key = f"data[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"path", "weight"} or "path" not in entry:
            raise ValueError(f"key {key!r}: expected {{path: CORPUS, weight: W}}, got {entry!r}")
        if not isinstance(entry["path"], str) or not entry["path"]:
            raise ValueError(f"key '{key}.path': expected a corpus folder or JSONL file, got {entry['path']!r}")
        weight = entry.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"key '{key}.weight': expected a positive number (the corpus's expected share of rows "
                             f"per epoch, before normalising), got {weight!r}")


@dataclass
class StudentRecipe:
    """Everything needed to fine-tune one student; field names follow TRL/transformers where they exist."""

    name: str
    model: str  # a local checkpoint dir, a hub id, or "tiny"
    mode: Literal["full", "lora", "qlora"] = "full"
    chat_template: str | None = None  # a .jinja file; None keeps the tokenizer's own template
    eos_token: str | None = None  # the end-of-turn token the template closes assistant turns with
    model_max_context: int | None = None  # the base's declared context (for hub ids; read from config.json when local)
    max_position_embeddings: int | None = None  # raise the context (Qwen2.5-Math 4k -> 32k as R1/open-r1 did)
    rope_theta: float | None = None
    max_length: int = 1024
    overlong: Literal["drop", "truncate"] = "drop"
    packing: bool = True
    # transformers' sampler, under its own name: "group_by_length" batches rows of similar length (less padding)
    train_sampling_strategy: Literal["random", "sequential", "group_by_length", "batch_rebalance"] = "random"
    learning_rate: float = 5e-5
    num_train_epochs: float = 3.0
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    global_batch_size: int | None = None  # documents the intended global batch; checked against processes
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    bf16: bool = True
    gradient_checkpointing: bool = True
    attn_implementation: str = "sdpa"
    use_liger_kernel: bool = False  # Liger's Triton kernels for RMSNorm, SwiGLU and RoPE (TRL's use_liger_kernel)
    # Split each sequence over this many GPUs (TRL/accelerate's cp_size; FSDP2 only). Packing is refused with it.
    context_parallel_size: int = 1
    distributed: Literal["ddp", "fsdp", "deepspeed"] = "ddp"
    accelerate_config: str | None = None  # students/accelerate/*.yaml for fsdp and deepspeed
    num_processes: int | None = None
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 10
    report_to: str | list[str] = "none"
    seed: int = 42
    trust_remote_code: bool = False
    tiny: TinySettings = field(default_factory=TinySettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    hardware: HardwareSettings = field(default_factory=HardwareSettings)
    objective: Literal["sft", "kd"] = "sft"  # kd: logit distillation from the teacher's stored top-K (kd:)
    kd: KDSettings = field(default_factory=KDSettings)
    # The training data (distill/train/corpora.py): corpora with weights, each weight its corpus's expected share
    # of rows per epoch (normalised); `distill train --data DIR` replaces the list with one corpus.
    data: list[dict[str, Any]] = field(default_factory=list)
    data_cache: str | None = None  # where tokenized datasets are cached (default OUT/.cache/tokenized)
    dataset_num_proc: int = 1  # processes that tokenize (datasets' map(num_proc=...))
    streaming: bool = False  # tokenize on the fly from the JSONL files (corpora larger than RAM); needs max_steps
    sources: list[str] = field(default_factory=list)  # where the numbers come from
    path: str | None = None  # the recipe file (set by load_student_recipe)

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")
        if self.distributed != "ddp" and not self.accelerate_config:
            raise ValueError(f"distributed: {self.distributed} needs accelerate_config (students/accelerate/*.yaml)")
        if self.bf16 and self.dtype == "float32" and self.mode != "qlora":
            raise ValueError("bf16: true with dtype: float32; set dtype: bfloat16 or bf16: false")
        if self.context_parallel_size > 1:
            if self.distributed != "fsdp":
                raise ValueError("context_parallel_size > 1 needs distributed: fsdp (TRL's cp_size runs on FSDP2)")
            if self.packing:
                raise ValueError(
                    "context_parallel_size > 1 with packing: true would let packed documents attend to each other "
                    "(context parallelism replaces the block-causal mask with plain causal attention); set packing: false"
                )
        if self.global_batch_size is not None and self.num_processes is not None:
            got = self.per_device_train_batch_size * self.gradient_accumulation_steps * self.num_processes
            if got != self.global_batch_size:
                raise ValueError(
                    f"global_batch_size {self.global_batch_size} != per_device_train_batch_size x "
                    f"gradient_accumulation_steps x num_processes = {got}"
                )
        check_data(self.data)
        if self.dataset_num_proc < 1:
            raise ValueError(f"key 'dataset_num_proc': expected at least 1, got {self.dataset_num_proc}")
        if self.streaming and self.objective == "kd":
            raise ValueError("streaming: true with objective: kd: the KD set checks every row against the teacher's "
                             "records before training, so it is built in full; set streaming: false")
        for key in ("chat_template", "accelerate_config"):
            value = getattr(self, key)
            if value is not None and not self.file(value).is_file():
                raise ValueError(f"key {key!r}: {self.file(value)}: no such file")
        context = self.declared_context()
        if context is not None and self.max_length > context:
            raise ValueError(
                f"max_length {self.max_length} is above the model's context of {context} tokens"
                + ("" if self.max_position_embeddings else "; raise it with max_position_embeddings/rope_theta")
            )

    def declared_context(self) -> int | None:
        """The context the student will have: an override, the tiny size, or the base's declared context."""
        if self.max_position_embeddings is not None:
            return self.max_position_embeddings
        if self.model == "tiny":
            return self.tiny.max_positions
        if self.model_max_context is not None:
            return self.model_max_context
        config = Path(self.resolve(self.model)) / "config.json"
        if config.is_file():
            data = json.loads(config.read_text(encoding="utf-8"))
            text = data.get("text_config", data)
            value = text.get("max_position_embeddings")
            return int(value) if value is not None else None
        return None

    def file(self, value: str) -> Path:
        """A file the recipe names (a template, an accelerate config), by the one search order of
        `distill.paths.find`, starting at the recipe's folder."""
        return find(value, relative_to=self.folder()) or Path(value)

    def resolve(self, value: str) -> str:
        """A model the recipe names: a local checkpoint (searched like `file`) as an absolute path, else the
        value as written (a hub id)."""
        return local_or_id(value, relative_to=self.folder())

    def folder(self) -> Path | None:
        """The folder of the recipe file, where its relative paths start."""
        return Path(self.path).parent if self.path else None


def load_student_recipe(path: str | Path, settings: list[str] | None = None) -> StudentRecipe:
    """Load and validate a student recipe (a path, or a shipped name such as `tiny-student`), then apply
    `KEY=VALUE` settings (`learning_rate=1e-4`, `tiny.hidden_size=32`). Errors name the file and key."""
    found = resolve(path, kind="student", what="student recipe")
    data = read_yaml(found)
    if "path" in data:
        raise ConfigError(f"{found}: key 'path' is set by the loader, not the recipe")
    apply_settings(data, settings)
    data["path"] = str(found.resolve())
    return from_mapping(StudentRecipe, data, str(found))


def recipe_from_mapping(data: Mapping[str, Any], where: str = "<recipe>") -> StudentRecipe:
    """Build a recipe from a mapping (a recipe already loaded and serialised, as the launcher passes it)."""
    return from_mapping(StudentRecipe, dict(data), where)
