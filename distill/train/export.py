"""`distill export`: copy a checkpoint, or merge a LoRA/QLoRA adapter into a full safetensors model.

For QLoRA the base is reloaded in full precision (never the 4-bit weights) before the merge, as the
QLoRA paper and peft recommend, so the merged model has no quantisation error baked in.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import yaml

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
    log.info("merging %s into %s", src, base)
    # dtype "auto" keeps the base's stored precision (never the 4-bit weights a QLoRA run trained against);
    # the context override of the recipe (recipe.yaml in the checkpoint) applies as it did in training.
    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto", use_safetensors=True, **_context(src))
    merged = PeftModel.from_pretrained(model, str(src)).merge_and_unload()
    dst.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(dst), safe_serialization=True)
    for name in CARRIED:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    return dst


def _context(checkpoint: Path) -> dict[str, Any]:
    """The recipe's max_position_embeddings/rope_theta overrides, as from_pretrained config kwargs."""
    recipe = checkpoint / "recipe.yaml"
    if not recipe.is_file():
        return {}
    data = yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}
    if data.get("max_position_embeddings") is None and data.get("rope_theta") is None:
        return {}
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(json.loads((checkpoint / "adapter_config.json").read_text())["base_model_name_or_path"])
    if data.get("max_position_embeddings") is not None:
        config.max_position_embeddings = data["max_position_embeddings"]
    if data.get("rope_theta") is not None:
        if isinstance(getattr(config, "rope_parameters", None), dict):
            config.rope_parameters["rope_theta"] = data["rope_theta"]
        config.rope_theta = data["rope_theta"]
    return {"config": config}
