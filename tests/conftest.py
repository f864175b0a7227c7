"""Shared fixtures: the tiny world's tokenizer and model, built locally; the network is blocked
(pytest-socket, see pyproject) so that any hidden download fails loudly."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")

REPO = Path(__file__).resolve().parent.parent
# tests/need.py (`from need import need`) for every test module; --import-mode=importlib adds no folder itself.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def toy_tokenizer():
    """The tiny world's locally trained tokenizer."""
    from distill.toy.tokenizer import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random Qwen2-architecture model with tokenizer and chat template."""
    import torch

    from distill.toy.model import save_tiny_model

    torch.set_num_threads(1)
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"), architecture="qwen2", seed=0)


@pytest.fixture(scope="session")
def toy_problems_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSONL file of 20 toy problems (seed 0) with gold traces."""
    from distill.jsonl import write_jsonl
    from distill.records import to_dict
    from distill.toy.problems import generate

    path = tmp_path_factory.mktemp("toy") / "problems.jsonl"
    write_jsonl(path, ({**to_dict(p), "gold": g} for p, g in generate(20, seed=0)))
    return path


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin/` folder of a fresh environment with distill installed from a wheel (tests/wheel.py)."""
    from .wheel import install

    return install(tmp_path_factory.mktemp("wheel"))
