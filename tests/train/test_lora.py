"""LoRA and QLoRA (bitsandbytes NF4 on CPU) save adapters that `distill export --merge` turns into full
safetensors models whose outputs equal the adapter's."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from need import need
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import ConfigError
from distill.train import export, train


def merged_matches_adapter(adapter: Path, merged: Path, tolerance: float) -> None:
    from peft import PeftModel

    base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    from distill.train.export import _context

    context = _context(adapter)  # the recipe's context override, as training used it
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, **context), str(adapter)).eval()
    full = AutoModelForCausalLM.from_pretrained(merged).eval()
    ids = PreTrainedTokenizerFast.from_pretrained(merged)("Ann has 12 apples.", return_tensors="pt")["input_ids"]
    plain = AutoModelForCausalLM.from_pretrained(base, **context).eval()
    with torch.no_grad():
        expected, got, untrained = with_adapter(ids).logits, full(ids).logits, plain(ids).logits
    torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance)
    assert (got - untrained).abs().max() > 1e-4  # the adapter changed something


def test_lora_adapter_merges_into_a_full_model(tiny_recipe: Path, toy_corpus: Path, tmp_path: Path, fast) -> None:
    # With a context override, as the Qwen2.5-Math recipes have: the merged model must keep it.
    fast += ["mode=lora", "lora={r: 4, alpha: 8, dropout: 0.0}", "learning_rate=1e-2", "max_position_embeddings=1024",
             "rope_theta=50000.0"]
    out = Path(train(tiny_recipe, toy_corpus, tmp_path / "lora", max_steps=3, settings=fast)["out_dir"])
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    config = json.loads((out / "adapter_config.json").read_text())
    targets = {name.rsplit(".", 1)[-1] for name in config["target_modules"]}
    assert config["r"] == 4 and targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

    result = CliRunner().invoke(app, ["export", str(out), "--out", str(tmp_path / "merged"), "--merge"])
    assert result.exit_code == 0, result.output
    merged = tmp_path / "merged"
    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()
    assert (merged / "generation_config.json").is_file() and (merged / "chat_template.jinja").is_file()
    config = json.loads((merged / "config.json").read_text())
    assert config["max_position_embeddings"] == 1024
    assert config.get("rope_parameters", config).get("rope_theta") == 50000.0
    merged_matches_adapter(out, merged, 1e-4)


def test_qlora_nf4_trains_on_cpu_and_merges_from_full_precision(tiny_recipe: Path, toy_corpus: Path, tmp_path: Path,
                                                                 fast) -> None:
    need(importlib.util.find_spec("bitsandbytes") is not None,
         "bitsandbytes is not installed (it is in the dev extra: pip install -e '.[dev]')")
    fast += ["mode=qlora", "lora={r: 4, alpha: 8, dropout: 0.0}", "learning_rate=1e-2", "tiny.architecture=llama"]
    out = Path(train(tiny_recipe, toy_corpus, tmp_path / "qlora", max_steps=3, settings=fast)["out_dir"])
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["quantization"] == "nf4" and metrics["mode"] == "qlora"
    assert metrics["global_step"] == 3 and all(h["loss"] == h["loss"] for h in metrics["log_history"])
    assert (out / "adapter_model.safetensors").is_file()
    merged = export(out, tmp_path / "merged", merge=True)
    weights = AutoModelForCausalLM.from_pretrained(merged)
    assert all(p.dtype == torch.float32 for p in weights.parameters())  # merged into the full-precision base
    # The adapter was trained against 4-bit weights, so only the merge itself is compared, in full precision.
    merged_matches_adapter(out, merged, 1e-4)


def test_merge_of_a_full_checkpoint_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a LoRA adapter"):
        export(tiny_model_dir, tmp_path / "x", merge=True)


def test_export_without_merge_copies_the_model_but_not_checkpoints(tiny_recipe: Path, toy_corpus: Path, tmp_path: Path,
                                                                   fast) -> None:
    out = Path(train(tiny_recipe, toy_corpus, tmp_path / "full", max_steps=2, settings=fast)["out_dir"])
    copied = export(out, tmp_path / "copy")
    assert (copied / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    assert not list(copied.glob("checkpoint-*")) and not (copied / "base").exists()
    assert AutoModelForCausalLM.from_pretrained(copied).config.hidden_size == 32
