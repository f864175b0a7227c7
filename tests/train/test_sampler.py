"""The recipe's `train_sampling_strategy` reaches TRL's SFTConfig under transformers' name, and with
`group_by_length` the trainer's batches carry less padding than with the default random order."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.errors import ConfigError
from distill.train.data import build_dataset, read_corpus
from distill.train.recipe import load_student_recipe
from distill.train.sft import build_trainer, load_model, load_tokenizer, materialize_tiny, sft_config

from .conftest import write_corpus


def padding_per_epoch(strategy: str, settings: list[str], corpus: Path, out: Path) -> tuple[int, int]:
    """(padding tokens, real tokens) in one epoch of the trainer's own train dataloader."""
    recipe = load_student_recipe("tiny", [*settings, "packing=false", f"train_sampling_strategy={strategy}",
                                          "per_device_train_batch_size=2"])
    base = str(materialize_tiny(recipe, out))
    tokenizer = load_tokenizer(recipe, base)
    dataset, _ = build_dataset(read_corpus(corpus), tokenizer, recipe.max_length, recipe.overlong)
    trainer = build_trainer(recipe, load_model(recipe, base, tokenizer), tokenizer, dataset, out / strategy, None)
    assert trainer.args.train_sampling_strategy == strategy
    padding = real = 0
    for batch in trainer.get_train_dataloader():
        mask = batch["attention_mask"]
        real += int(mask.sum())
        padding += int(mask.numel() - mask.sum())
    return padding, real


def test_the_sampling_strategy_reaches_the_sft_config(tmp_path: Path, fast: list[str]) -> None:
    recipe = load_student_recipe("tiny", fast)
    assert recipe.train_sampling_strategy == "random"  # transformers' default, kept unless the recipe says
    assert sft_config(recipe, tmp_path, None).train_sampling_strategy == "random"
    grouped = load_student_recipe("tiny", [*fast, "train_sampling_strategy=group_by_length"])
    assert sft_config(grouped, tmp_path, None).train_sampling_strategy == "group_by_length"
    with pytest.raises(ConfigError, match=r"tiny.yaml: key 'train_sampling_strategy'"):
        load_student_recipe("tiny", [*fast, "train_sampling_strategy=by_length"])


def test_group_by_length_batches_carry_less_padding(tmp_path: Path, fast: list[str]) -> None:
    # 64 rows of mixed lengths: transformers groups within mega-batches of min(rows // (4 x batch), 50)
    # batches, so a corpus this size (batch 2) gets mega-batches of 8 batches to sort.
    corpus = write_corpus(tmp_path / "corpus", 64, seed=5, difficulty=(1, 5))
    settings = [*fast, "max_length=512"]  # every row fits
    random_padding, random_real = padding_per_epoch("random", settings, corpus, tmp_path)
    grouped_padding, grouped_real = padding_per_epoch("group_by_length", settings, corpus, tmp_path)
    assert random_real == grouped_real  # the same rows, each once
    assert grouped_padding < random_padding / 2
