"""`distill export`: copy a checkpoint, or merge a LoRA/QLoRA adapter into a full safetensors model.

For QLoRA the base is reloaded in full precision (never the 4-bit weights) before the merge, as the
QLoRA paper and peft recommend, so the merged model has no quantisation error baked in.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from distill.errors import ConfigError

log = logging.getLogger(__name__)
CARRIED = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
           "generation_config.json", "README.md", "recipe.yaml", "train_metrics.json", "data_report.json")


def export(checkpoint: str | Path, out: str | Path, merge: bool = False) -> Path:
    """Write CHECKPOINT to OUT; with `merge`, a LoRA adapter is merged into its base as a full model."""
    src, dst = Path(checkpoint), Path(out)
    if not src.is_dir():
        raise ConfigError(f"{src}: no such checkpoint directory")
    if dst.resolve() == src.resolve():
        raise ConfigError(f"{dst}: the output must differ from the checkpoint")
    adapter = src / "adapter_config.json"
    if not merge:
        shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoint-*", "base", "runs"))
        return dst
    if not adapter.is_file():
        raise ConfigError(f"{src}: not a LoRA adapter (no adapter_config.json); --merge needs one")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = json.loads(adapter.read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{adapter}: field 'base_model_name_or_path' is empty")
    dtype = _base_dtype(Path(base))
    log.info("merging %s into %s (%s)", src, base, dtype)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, use_safetensors=True)
    merged = PeftModel.from_pretrained(model, str(src)).merge_and_unload()
    dst.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(dst), safe_serialization=True)
    for name in CARRIED:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    return dst


def _base_dtype(base: Path) -> torch.dtype:
    """The base's stored dtype (full precision even when training was 4-bit); float32 when unknown."""
    config = base / "config.json"
    if config.is_file():
        name = json.loads(config.read_text(encoding="utf-8")).get("dtype") or json.loads(
            config.read_text(encoding="utf-8")).get("torch_dtype")
        if name in ("bfloat16", "float16", "float32"):
            return getattr(torch, name)
    return torch.float32
