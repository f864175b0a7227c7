"""Fixtures for the reinforcement tests: a small toy problem file and a tiny GRPO recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.jsonl import write_jsonl
from distill.records import to_dict
from distill.toy.problems import generate


@pytest.fixture(scope="session")
def rl_problems_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six toy problems plus one without a reference answer (its accuracy reward is None)."""
    rows = [to_dict(p) for p, _ in generate(6, seed=11)]
    rows.append({"id": "no-reference", "prompt": "Eli has some shells. How many shells does Eli have?", "kind": "math"})
    path = tmp_path_factory.mktemp("rl") / "problems.jsonl"
    write_jsonl(path, rows)
    return path
