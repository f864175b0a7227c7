"""The installed package works without the checkout: from a wheel in a fresh environment, run in an empty
directory, it finds its shipped sets, teacher profiles, recipes and tiny checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .wheel import distill


@pytest.mark.slow
def test_the_wheel_runs_shipped_sets_teachers_and_recipes_from_an_empty_directory(installed: Path,
                                                                                   tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "500 problems (500 math)" in " ".join(distill(installed, empty, "problems", "show", "math500").split())
    distill(installed, empty, "toy", "problems", "--n", "3", "--seed", "1", "--difficulty", "1", "--out", "toy.jsonl")
    output = distill(installed, empty, "generate", "--teacher", "tiny", "--problems", "toy.jsonl", "--samples", "2",
                     "--max-new-tokens", "32", "--out", "gen")
    assert "6 samples stored, complete" in output
    manifest = json.loads((empty / "gen" / "manifest.json").read_text())
    assert manifest["teacher"]["model"] == "tiny"  # named by the profile, its local path only in `local`
    sizes = ["train_problems.toy_n=8", "validation.problems=2", "validation.max_new_tokens=48", "heldout.toy_n=3",
             "sample.n=1", "sample.max_new_tokens=48", "train.max_steps=2", "train.checkpoints=2", "eval.k=1", "eval.max_new_tokens=48", "verify.workers=1",
             # At these sizes the corpus must not depend on how good the teacher is (filters have their own tests).
             "filters.correctness.enabled=false", "filters.truncation.enabled=false", "filters.format.enabled=false"]
    output = distill(installed, empty, "run", "quickstart", "--run-dir", "quick", *[f"--set={s}" for s in sizes])
    assert "| filtered |" in output and "| teacher |" in output
    assert (empty / "quick" / "results.md").is_file()
