"""`distill run`: stages chained in one run directory, finished stages skipped, a killed run resumed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import ConfigError, DistillError
from distill.pipeline import load_recipe, run_pipeline

from .conftest import tiny_recipe

STAGES = ["problems", "samples", "verified", "corpus-filtered", "corpus-unfiltered", "student-filtered",
          "student-unfiltered", "eval-base", "eval-unfiltered", "eval-filtered", "eval-teacher"]


def test_resume_runs_only_the_unfinished_stages(interrupted_run: dict) -> None:
    resumed = interrupted_run["resumed"]
    assert resumed["ran"] == ["eval-filtered", "eval-teacher"]
    assert resumed["skipped"] == STAGES[:9]
    run_dir: Path = interrupted_run["run_dir"]
    # Nothing a finished stage wrote was rewritten by the resumed run.
    for rel, mtime in interrupted_run["before"].items():
        if rel.parts[0] in STAGES[:9]:
            assert (run_dir / rel).stat().st_mtime_ns == mtime, rel
    assert all((run_dir / s / ".done").is_file() for s in STAGES)


def test_run_directory_holds_every_stage_output(interrupted_run: dict) -> None:
    run_dir: Path = interrupted_run["run_dir"]
    train = (run_dir / "problems" / "train.jsonl").read_text().splitlines()
    heldout = [json.loads(line)["prompt"] for line in (run_dir / "problems" / "heldout.jsonl").read_text().splitlines()]
    assert len(heldout) == 4 and not {json.loads(line)["prompt"] for line in train} & set(heldout)
    verified = [json.loads(line) for line in (run_dir / "verified" / "verified.jsonl").read_text().splitlines()]
    assert len(verified) == 2 * len(train) and all("correct" in s for s in verified)
    unfiltered = (run_dir / "corpus-unfiltered" / "corpus.jsonl").read_text().splitlines()
    assert len(unfiltered) == len(verified)  # every sample, filters off
    funnel = json.loads((run_dir / "corpus-filtered" / "funnel.json").read_text())
    assert 0 < funnel["remaining"] <= len(verified)
    rejected = [json.loads(line) for line in (run_dir / "corpus-filtered" / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) + funnel["remaining"] == len(verified) and all(r["filter"] for r in rejected)
    for name in ("filtered", "unfiltered"):
        metrics = json.loads((run_dir / f"student-{name}" / "train_metrics.json").read_text())
        assert metrics["global_step"] == 2
        if (os.cpu_count() or 1) >= 2:  # trained in a worker: its per-step logs went to its own file
            assert "'loss'" in (run_dir / f"student-{name}" / "train.log").read_text()
    table = (run_dir / "results.md").read_text()
    for label in ("base", "unfiltered", "filtered", "teacher"):
        assert label in table
    summary = json.loads((run_dir / "eval-teacher" / "summary.json").read_text())
    assert summary["k"] == 1


def test_cli_rerun_of_a_complete_run_skips_everything(interrupted_run: dict) -> None:
    result = CliRunner().invoke(app, ["run", str(interrupted_run["recipe"])])
    assert result.exit_code == 0, result.output
    assert "skipped (complete): " + ", ".join(STAGES) in result.output
    assert "teacher" in result.output and "filtered" in result.output


def test_changed_recipe_is_refused_not_redone(interrupted_run: dict) -> None:
    tmp: Path = interrupted_run["tmp"] / "changed"
    tmp.mkdir()
    recipe = tiny_recipe(tmp, run_dir=str(interrupted_run["run_dir"]),
                         train={"student": str(Path(__file__).resolve().parents[2] / "students" / "tiny-student.yaml"),
                                "max_steps": 3})
    with pytest.raises(DistillError, match="student-filtered: this stage finished with different inputs"):
        run_pipeline(load_recipe(recipe))


def test_bad_recipe_names_file_and_key(tmp_path: Path) -> None:
    path = tiny_recipe(tmp_path, sampel={"n": 2})
    with pytest.raises(ConfigError, match="recipe.yaml.*sampel"):
        load_recipe(path)
    path = tiny_recipe(tmp_path, heldout={"toy_seed": 3})
    with pytest.raises(ConfigError, match="recipe.yaml.*exactly one of source"):
        load_recipe(path)


def test_set_overrides_reach_nested_keys(tmp_path: Path) -> None:
    path = tiny_recipe(tmp_path)
    recipe = load_recipe(path, overrides=["sample.n=3", "train.overrides.seed=5", "eval.models=[base, teacher]"])
    assert (recipe.sample.n, recipe.train.overrides["seed"], recipe.eval.models) == (3, 5, ["base", "teacher"])
    with pytest.raises(ConfigError, match="eval: unknown key 'kk'"):
        load_recipe(path, overrides=["eval.kk=3"])
