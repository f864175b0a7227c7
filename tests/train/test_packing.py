"""Packing without cross-sample attention: the loss of a packed batch (TRL's BFD packing; position ids reset per
sample, as packed rows or TRL's padding-free flattening) equals the loss of the same samples unpacked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from distill.toy.model import make_tiny_model
from distill.train.data import PackedRowsCollator, build_dataset, pack_rows, read_corpus


@pytest.mark.parametrize("layout", ["rows", "padding_free"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_loss_equals_unpacked_loss(toy_tokenizer, toy_corpus: Path, attention: str, layout: str) -> None:
    torch.set_num_threads(1)
    model, tokenizer = make_tiny_model(toy_tokenizer, seed=3, hidden_size=32, num_heads=2, num_kv_heads=1)
    model.config._attn_implementation = attention
    model.config.use_cache = False
    model.eval()
    rows = read_corpus(toy_corpus)[:12]
    dataset, _ = build_dataset(rows, tokenizer, 512, "drop")

    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(list(dataset))
    packed_set = pack_rows(dataset, 512)
    assert len(packed_set) < len(dataset)  # several samples share a row
    assert any(len(s) > 1 for s in packed_set["seq_lengths"])
    if layout == "rows":  # what train() uses with sdpa/eager: one packed row per batch item
        packed = PackedRowsCollator(tokenizer.pad_token_id)(list(packed_set))
        assert packed["input_ids"].shape[0] == len(packed_set) > 1
    else:  # TRL's padding-free flattening (train() uses it with flash-attention)
        packed = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(list(packed_set))
        assert packed["input_ids"].shape[0] == 1
    assert "attention_mask" not in packed

    with torch.no_grad():
        loss_unpacked = model(**padded, use_cache=False).loss
        loss_packed = model(**packed, use_cache=False).loss
        # The same trained tokens on both sides.
        assert (packed["labels"] != -100).sum() == (padded["labels"] != -100).sum()
        torch.testing.assert_close(loss_packed, loss_unpacked, rtol=1e-5, atol=1e-5)

        # Control: without the per-sample position reset, the samples attend across each other and the loss moves.
        leaky = {"input_ids": packed["input_ids"], "labels": packed["labels"]}
        loss_leaky = model(**leaky, use_cache=False).loss
    assert abs(loss_leaky.item() - loss_unpacked.item()) > 1e-4
