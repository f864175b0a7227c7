"""Fixtures for the trainer tests: a toy corpus in the filter stage's format, and a small fast recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from distill.text import MATH_PROMPT_SUFFIX
from distill.toy.problems import generate

REPO = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)


def write_corpus(directory: Path, n: int, seed: int = 1, difficulty: int | tuple[int, int] = (1, 2)) -> Path:
    """DIR/corpus.jsonl with `n` toy rows shaped like `distill filter`'s output."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for problem, gold in generate(n, seed=seed, difficulty=difficulty):
            row = {
                "messages": [
                    {"role": "user", "content": f"{problem.prompt}\n{MATH_PROMPT_SUFFIX}"},
                    {"role": "assistant", "content": gold},
                ],
                "problem_id": problem.id,
                "source": "toy",
                "teacher": "toy-gold",
                "completion_tokens": len(gold),
            }
            handle.write(json.dumps(row) + "\n")
    return directory


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-row toy corpus directory, with a funnel.json as `distill filter` writes one."""
    directory = write_corpus(tmp_path_factory.mktemp("corpus"), 24)
    (directory / "funnel.json").write_text(json.dumps({"entered": 30, "removed": {"format": 6}, "kept": 24}))
    return directory


# Small and fast: a 32-wide model, short sequences, a step every couple of rows.
FAST = [
    "tiny.hidden_size=32", "tiny.num_layers=2", "tiny.num_heads=2", "tiny.num_kv_heads=1", "tiny.max_positions=512",
    "max_length=256", "per_device_train_batch_size=4", "learning_rate=5e-3", "warmup_ratio=0.0",
    "lr_scheduler_type=constant", "logging_steps=1", "save_steps=2",
]


@pytest.fixture()
def fast() -> list[str]:
    """Settings that shrink students/tiny.yaml for tests (a fresh copy each time)."""
    return list(FAST)


@pytest.fixture(scope="session")
def tiny_recipe() -> Path:
    """students/tiny.yaml."""
    return REPO / "students" / "tiny.yaml"
