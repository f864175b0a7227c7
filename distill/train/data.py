"""The corpus as a training set: read DATA_DIR/corpus.jsonl, render each conversation with the student's
chat template, build labels that cover only the assistant turn (reasoning, `</think>`, answer and EOS),
and count over-long rows before training so that nothing is cut silently.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.errors import ConfigError, RecordError
from distill.jsonl import read_jsonl

if TYPE_CHECKING:  # datasets and transformers load when a corpus is tokenized, not on import
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)
IGNORE = -100


@dataclass
class OverlongReport:
    """How many rows exceeded max_length, how many tokens they had beyond it, and what was done."""

    rows: int = 0
    kept: int = 0
    overlong: int = 0
    overlong_tokens: int = 0  # tokens beyond max_length, summed over over-long rows
    longest: int = 0
    action: str = "drop"
    max_length: int = 0
    total_tokens: int = 0  # tokens of the rows kept, after any truncation
    label_tokens: int = 0
    examples: list[str] = field(default_factory=list)  # problem ids of a few over-long rows

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def corpus_path(data_dir: str | Path) -> Path:
    """DATA_DIR/corpus.jsonl, or DATA_DIR itself when it is a JSONL file."""
    path = Path(data_dir)
    if path.is_dir():
        path = path / "corpus.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path}: no corpus here (expected DATA_DIR/corpus.jsonl from `distill filter`)")
    return path


def check_row(row: dict[str, Any], where: str) -> None:
    """A corpus row needs `messages` ending in an assistant turn with string content (`where` is file:line)."""
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RecordError(f"{where}: field 'messages': expected a non-empty list of chat messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str) or "role" not in message:
            raise RecordError(f"{where}: field 'messages[{i}]': expected {{'role': ..., 'content': str}}")
    if messages[-1]["role"] != "assistant":
        raise RecordError(f"{where}: field 'messages': the last turn must be the assistant's")


def read_corpus(data_dir: str | Path) -> list[dict[str, Any]]:
    """The corpus rows, checked (`check_row`), all in memory (the KD set; SFT reads rows one at a time through
    distill/train/datacache.py)."""
    path = corpus_path(data_dir)
    rows: list[dict[str, Any]] = []
    for line, row in read_jsonl(path):
        check_row(row, f"{path}:{line}")
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: the corpus is empty")
    return rows


def tokenize_row(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """Input ids and labels of one conversation: labels are the ids inside the template's generation
    markers (the assistant turns) and IGNORE elsewhere."""
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, add_generation_prompt=False
    )
    ids = list(out["input_ids"])
    mask = list(out["assistant_masks"])
    labels = [t if m else IGNORE for t, m in zip(ids, mask, strict=True)]
    return ids, labels


def check_template(tokenizer: PreTrainedTokenizerBase, where: str) -> None:
    """Fail early unless the template marks the assistant turn and that turn ends with the tokenizer's EOS,
    so the student learns to stop and the saved generation config stops where the template does."""
    template = tokenizer.chat_template
    if not isinstance(template, str) or "{% generation %}" not in template.replace("{%- generation -%}", "{% generation %}"):
        raise ConfigError(f"{where}: the chat template has no {{% generation %}} markers (needed for assistant-only loss)")
    probe = [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "<think>\nx\n</think>\n\n2"}]
    ids, labels = tokenize_row(tokenizer, probe)
    trained = [t for t in labels if t != IGNORE]
    if not trained:
        raise ConfigError(f"{where}: the chat template marks no assistant tokens")
    if trained[-1] != tokenizer.eos_token_id:
        raise ConfigError(
            f"{where}: the assistant turn's last trained token is {tokenizer.decode([trained[-1]])!r}, not the EOS "
            f"{tokenizer.eos_token!r}; put the end-of-turn token inside {{% generation %}} or set eos_token"
        )
    if "</think>" not in tokenizer.decode(trained):
        raise ConfigError(f"{where}: the chat template drops the think block from the assistant turn")


def build_dataset(
    rows: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, max_length: int, overlong: str
) -> tuple[Dataset, OverlongReport]:
    """Tokenize rows into a `Dataset` of input_ids/labels and apply the over-long policy (drop or truncate),
    returning the report of what was over-long."""
    report = OverlongReport(rows=len(rows), action=overlong, max_length=max_length)
    ids_out: list[list[int]] = []
    labels_out: list[list[int]] = []
    for row in rows:
        ids, labels = tokenize_row(tokenizer, row["messages"])
        if len(ids) > max_length:
            report.overlong += 1
            report.overlong_tokens += len(ids) - max_length
            report.longest = max(report.longest, len(ids))
            if len(report.examples) < 5:
                report.examples.append(str(row.get("problem_id", "?")))
            if overlong == "drop":
                continue
            ids, labels = ids[:max_length], labels[:max_length]
        if all(t == IGNORE for t in labels):
            continue  # a prompt that fills max_length alone carries no loss
        ids_out.append(ids)
        labels_out.append(labels)
        report.total_tokens += len(ids)
        report.label_tokens += sum(t != IGNORE for t in labels)
    report.kept = len(ids_out)
    if report.overlong:
        log.warning(
            "%d of %d corpus rows are longer than max_length %d (%d tokens beyond it, longest %d): %s",
            report.overlong, report.rows, max_length, report.overlong_tokens, report.longest,
            "dropped" if overlong == "drop" else "truncated (their end and EOS are not trained)",
        )
    else:
        log.info("all %d corpus rows fit in max_length %d", report.rows, max_length)
    if not ids_out:
        raise ConfigError(f"no corpus row fits max_length {max_length} (overlong: {overlong}); raise max_length")
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": ids_out, "labels": labels_out}), report


class PackedRowsCollator:
    """Batches of packed rows (TRL's BFD packs, one row each) with position ids that restart at every sample
    and no attention mask, so transformers builds a block-causal mask per row: no cross-sample attention,
    and attention costs rows x max_length^2 rather than (rows x max_length)^2 as TRL's padding-free
    flattening does without flash-attention (sdpa/eager on CPU). Labels at sample starts are ignored."""

    def __init__(self, pad_token_id: int) -> None:
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self.inner = DataCollatorForLanguageModeling(pad_token_id=pad_token_id, return_position_ids=True)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        """Collate packed rows: input_ids, labels and position_ids, right-padded."""
        batch = self.inner(examples)
        batch.pop("attention_mask", None)
        batch["labels"][batch["position_ids"] == 0] = IGNORE
        return batch


def pack_rows(dataset: Dataset, max_length: int) -> Dataset:
    """Pack samples into rows of at most max_length tokens with TRL's best-fit-decreasing packer."""
    from trl.data_utils import pack_dataset

    return pack_dataset(dataset, max_length, "bfd")


def write_report(report: OverlongReport, out_dir: str | Path) -> Path:
    """Write out_dir/data_report.json."""
    path = Path(out_dir) / "data_report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path
