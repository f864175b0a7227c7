"""Build the student (model, tokenizer, template), TRL's SFTConfig and SFTTrainer, with peft for LoRA/QLoRA.

No trainer subclass: the labels come from the data module, packing and padding-free batching from TRL,
adapters from peft, resume from transformers' checkpoints.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.errors import ConfigError
from distill.toy.model import save_tiny_model
from distill.train.data import PackedRowsCollator, pack_rows
from distill.train.recipe import StudentRecipe

log = logging.getLogger(__name__)
if TYPE_CHECKING:  # torch and transformers load when a student is built, not when distill is imported
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype a recipe names (float32, bfloat16, float16)."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def materialize_tiny(recipe: StudentRecipe, out_dir: Path) -> Path:
    """Save the fresh tiny random base of a `model: tiny` recipe to OUT/base (kept, so that adapters and
    resumed runs find the same base) and return its path."""
    base = out_dir / "base"
    if not (base / "config.json").is_file():
        t = recipe.tiny
        # Written aside and renamed: ranks (and machines) that wait for base/config.json see a whole model.
        partial = out_dir / f"base.partial-{os.getpid()}"
        save_tiny_model(
            partial, architecture=t.architecture, seed=t.seed, hidden_size=t.hidden_size, num_layers=t.num_layers,
            num_heads=t.num_heads, num_kv_heads=t.num_kv_heads, max_positions=t.max_positions,
        )
        if base.exists():  # a base torn by a kill while saving (no config.json): ours to replace
            import shutil

            shutil.rmtree(base)
        os.replace(partial, base)
    return base


def base_path(recipe: StudentRecipe, out_dir: Path) -> str:
    """Where the base model loads from: OUT/base for `tiny`, else the recipe's path or hub id."""
    return str(materialize_tiny(recipe, out_dir)) if recipe.model == "tiny" else recipe.resolve(recipe.model)


def load_tokenizer(recipe: StudentRecipe, base: str) -> PreTrainedTokenizerBase:
    """The student's tokenizer with the recipe's chat template and EOS.

    A local tokenizer.json loads as `PreTrainedTokenizerFast` (AutoTokenizer would swap in Qwen2's own
    pre-tokenizer for qwen2 models and change the ids of the tiny world's tokenizer).
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (Path(base) / "tokenizer.json").is_file():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(base)
    else:
        tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=recipe.trust_remote_code)
    if recipe.chat_template is not None:
        path = recipe.file(recipe.chat_template)
        if not path.is_file():
            raise ConfigError(f"{recipe.path}: key 'chat_template': {path}: no such file")
        tokenizer.chat_template = path.read_text(encoding="utf-8")
    if recipe.eos_token is not None:
        if recipe.eos_token not in tokenizer.get_vocab():
            raise ConfigError(f"{recipe.path}: key 'eos_token': {recipe.eos_token!r} is not in the tokenizer")
        tokenizer.eos_token = recipe.eos_token
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        # A pad equal to EOS is harmless with masks, but keep EOS distinct where the vocabulary allows.
        tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return tokenizer


def load_model(recipe: StudentRecipe, base: str, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The base model in the recipe's dtype (4-bit NF4 for QLoRA), with any context override applied."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base, trust_remote_code=recipe.trust_remote_code)
    if recipe.max_position_embeddings is not None:
        config.max_position_embeddings = recipe.max_position_embeddings
    if recipe.rope_theta is not None:
        # transformers 5 keeps rope_theta in rope_parameters; older configs have it at the top level.
        params = getattr(config, "rope_parameters", None)
        if isinstance(params, dict):
            params["rope_theta"] = recipe.rope_theta
        config.rope_theta = recipe.rope_theta
    config.use_cache = False  # packed batches equal unpacked ones only without the cache (tests/train/test_packing.py)
    kwargs: dict[str, Any] = {
        "config": config,
        "dtype": torch_dtype(recipe.dtype),
        "attn_implementation": recipe.attn_implementation,
        "trust_remote_code": recipe.trust_remote_code,
        "use_safetensors": True,
    }
    if recipe.mode == "qlora":
        from transformers import BitsAndBytesConfig

        compute = torch_dtype(recipe.dtype) if torch.cuda.is_available() else torch.float32
        # FSDP-QLoRA: FSDP2 can shard 4-bit weights only when they are stored in a float dtype.
        storage = {"bnb_4bit_quant_storage": compute} if recipe.distributed == "fsdp" else {}
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=True, **storage,
        )
        kwargs["dtype"] = compute
        if not torch.cuda.is_available():
            kwargs["device_map"] = "cpu"
    model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    if recipe.mode == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=recipe.gradient_checkpointing)
    return model


def peft_config(recipe: StudentRecipe) -> Any:
    """A peft `LoraConfig` for lora/qlora recipes, None for full fine-tuning."""
    if recipe.mode == "full":
        return None
    from peft import LoraConfig

    lora = recipe.lora
    return LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
        task_type="CAUSAL_LM", bias="none",
    )


def packing_mode(recipe: StudentRecipe) -> str:
    """How packed batches reach the model: TRL's padding-free flattening where flash-attention's varlen
    kernels make it cheap, packed rows with per-row block-causal masks otherwise (sdpa/eager, CPU)."""
    if not recipe.packing:
        return "off"
    return "padding_free" if recipe.attn_implementation.startswith("flash") else "rows"


REPORTERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "none": ()}


def check_report_to(recipe: StudentRecipe, names: list[str]) -> None:
    """Fail before training, naming the key, when a logger the recipe asks for is not installed."""
    import importlib.util

    for name in names:
        if name not in REPORTERS:
            raise ConfigError(f"{recipe.path}: key 'report_to': {name!r} is not one of {', '.join(REPORTERS)}")
        modules = REPORTERS[name]
        if modules and not any(importlib.util.find_spec(m) for m in modules):
            raise ConfigError(
                f"{recipe.path}: key 'report_to': {name} is not installed (pip install {modules[0]}), "
                "or set report_to: none"
            )


def sft_config(recipe: StudentRecipe, out_dir: Path, max_steps: int | None) -> Any:
    """TRL's SFTConfig from the recipe; the dataset arrives tokenized (input_ids + labels)."""
    import torch
    from trl import SFTConfig

    report_to = [recipe.report_to] if isinstance(recipe.report_to, str) else list(recipe.report_to)
    check_report_to(recipe, report_to)
    on_gpu = torch.cuda.is_available()
    return SFTConfig(
        output_dir=str(out_dir),
        max_length=recipe.max_length,
        packing=packing_mode(recipe) == "padding_free",
        packing_strategy="bfd",  # position_ids reset per sample: no cross-sample attention
        padding_free=packing_mode(recipe) == "padding_free",
        learning_rate=recipe.learning_rate,
        num_train_epochs=recipe.num_train_epochs,
        max_steps=max_steps if max_steps is not None else -1,
        lr_scheduler_type=recipe.lr_scheduler_type,
        warmup_steps=recipe.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        weight_decay=recipe.weight_decay,
        max_grad_norm=recipe.max_grad_norm,
        train_sampling_strategy=recipe.train_sampling_strategy,
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        bf16=recipe.bf16 and on_gpu,
        # transformers 5 name for gradient checkpointing; QLoRA's is enabled by prepare_model_for_kbit_training.
        activation_checkpointing=recipe.gradient_checkpointing and recipe.mode != "qlora",
        activation_checkpointing_kwargs={"use_reentrant": False} if recipe.gradient_checkpointing else None,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=recipe.save_total_limit,
        save_only_model=False,
        logging_steps=recipe.logging_steps,
        logging_first_step=True,
        report_to=[r for r in report_to if r != "none"] or "none",
        seed=recipe.seed,
        use_cpu=not on_gpu,
        trust_remote_code=recipe.trust_remote_code,
        dataset_kwargs={"skip_prepare_dataset": False},
        remove_unused_columns=True,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False if recipe.mode == "full" else None,
        disable_tqdm=False,
        use_liger_kernel=recipe.use_liger_kernel,
        **context_parallel(recipe),
    )


def context_parallel(recipe: StudentRecipe) -> dict[str, Any]:
    """TrainingArguments' parallelism_config for `context_parallel_size` > 1 (accelerate's cp_size on FSDP2,
    the other ranks sharding the model); nothing otherwise. The recipe refuses packing with it."""
    if recipe.context_parallel_size <= 1:
        return {}
    from accelerate.parallelism_config import ParallelismConfig

    world = int(os.environ.get("WORLD_SIZE", "1"))
    cp = recipe.context_parallel_size
    if world % cp:
        raise ConfigError(f"{recipe.path}: key 'context_parallel_size': {cp} does not divide the {world} processes")
    return {"parallelism_config": ParallelismConfig(cp_size=cp, dp_shard_size=world // cp)}


def build_trainer(recipe: StudentRecipe, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: Any,
                  out_dir: Path, max_steps: int | None, packed: bool = False) -> Any:
    """An SFTTrainer over the prepared dataset (`packed`: already packed into rows, as the tokenized cache
    holds it), with a LoRA adapter for lora/qlora recipes."""
    from trl import SFTTrainer

    collator = None
    if packing_mode(recipe) == "rows":
        if not packed:
            dataset = pack_rows(dataset, recipe.max_length)
        collator = PackedRowsCollator(tokenizer.pad_token_id)
    return SFTTrainer(
        model=model,
        args=sft_config(recipe, out_dir, max_steps),
        data_collator=collator,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config(recipe),
    )
