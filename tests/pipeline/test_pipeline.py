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
        if rel.parts[0] in STAGES[:9] or rel.parts[0] == "samples":
            assert (run_dir / rel).stat().st_mtime_ns == mtime, rel
    assert all((run_dir / ".stages" / f"{s}.json").is_file() for s in STAGES)


def test_run_directory_holds_every_stage_output(interrupted_run: dict) -> None:
    run_dir: Path = interrupted_run["run_dir"]
    train = (run_dir / "problems" / "train.jsonl").read_text().splitlines()
    heldout = [json.loads(line)["prompt"] for line in (run_dir / "problems" / "heldout.jsonl").read_text().splitlines()]
    assert len(heldout) == 4 and not {json.loads(line)["prompt"] for line in train} & set(heldout)
    verified = [json.loads(line) for line in (run_dir / "samples" / "verified.jsonl").read_text().splitlines()]
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
    for label in ("base", "unfiltered", "filtered", "teacher", "filtered - unfiltered", "unfiltered - base"):
        assert label in table
    # The rule: checkpoints compared on the validation problems, the best one evaluated.
    selection = json.loads((run_dir / "student-filtered" / "selection.json").read_text())
    assert [c["checkpoint"] for c in selection["candidates"]] == ["checkpoint-1", "checkpoint-2"]
    assert len((run_dir / "problems" / "validation.jsonl").read_text().splitlines()) == 2
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["paired"]) == {"filtered - unfiltered", "unfiltered - base"}
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
    recipe = tiny_recipe(tmp, run_dir=str(interrupted_run["run_dir"]), train={"student": "tiny-student", "max_steps": 3})
    with pytest.raises(DistillError, match="student-filtered: this stage finished with different inputs"):
        run_pipeline(load_recipe(recipe))


def test_bad_recipe_names_file_and_key(tmp_path: Path) -> None:
    path = tiny_recipe(tmp_path, sampel={"n": 2})
    with pytest.raises(ConfigError, match="recipe.yaml.*sampel"):
        load_recipe(path)
    path = tiny_recipe(tmp_path, heldout={"toy_seed": 3})
    with pytest.raises(ConfigError, match="recipe.yaml.*exactly one of source"):
        load_recipe(path)


def test_set_reaches_the_recipe_and_each_stage_config(tmp_path: Path) -> None:
    path = tiny_recipe(tmp_path)
    recipe = load_recipe(path, settings=["sample.n=3", "student.seed=5", "filters.selection.max_per_problem=1",
                                         "eval.models=[base, teacher]"])
    assert (recipe.sample.n, recipe.eval.models) == (3, ["base", "teacher"])
    assert recipe.settings("student")[-1] == "seed=5" and recipe.filters().selection.max_per_problem == 1
    with pytest.raises(ConfigError, match="eval: unknown key 'kk'"):
        load_recipe(path, settings=["eval.kk=3"])
    with pytest.raises(ConfigError, match="unknown key 'sed'"):
        load_recipe(path, settings=["student.sed=5"])  # checked when the recipe loads, not after sampling
    with pytest.raises(ConfigError, match="selection: unknown key 'polcy'"):
        load_recipe(path, settings=["filters.selection.polcy=shortest"])


def test_earlier_recipe_keys_still_load(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tiny_recipe(tmp_path, set=[], verify_workers=2, filters={"set": ["decontamination.enabled=false"]},
                       train={"student": "tiny-student", "max_steps": 2, "overrides": {"seed": 7}})
    recipe = load_recipe(path, settings=["train.overrides.learning_rate=1e-3"])
    assert recipe.verify.workers == 2 and recipe.filters().decontamination.enabled is False
    assert recipe.settings("student") == ["seed=7", "learning_rate=1e-3"]
    assert "train.overrides" in caplog.text and "filters: {config, set}" in caplog.text


def test_the_corpus_carries_the_prompt_exactly_as_the_teacher_saw_it(interrupted_run: dict) -> None:
    from distill.problems import load_problems
    from distill.sampling import build_prompt, resolve_teacher

    from .conftest import SYSTEM

    run_dir: Path = interrupted_run["run_dir"]
    profile = resolve_teacher(str(interrupted_run["tmp"] / "careful.yaml"))
    problems = {p.id: p for p in load_problems(str(run_dir / "problems" / "train.jsonl"))}
    rows = [json.loads(line) for line in (run_dir / "corpus-filtered" / "corpus.jsonl").read_text().splitlines()]
    assert rows
    for row in rows:
        seen = build_prompt(problems[row["problem_id"]], profile)
        assert row["messages"][:-1] == seen
        assert seen[0] == {"role": "system", "content": SYSTEM} and seen[1]["content"].startswith("Problem: ")
    funnel = json.loads((run_dir / "corpus-filtered" / "funnel.json").read_text())
    assert funnel["prompts"] == {"recorded": len(rows), "default": 0}


def test_published_artifacts_carry_no_local_path_or_placeholder_link(interrupted_run: dict, tmp_path: Path) -> None:
    run_dir: Path = interrupted_run["run_dir"]
    report = tmp_path / "report.html"
    assert CliRunner().invoke(app, ["report", str(run_dir / "corpus-filtered"), "--out", str(report)]).exit_code == 0
    published = [report, run_dir / "results.md"]
    for corpus in ("corpus-filtered", "corpus-unfiltered"):
        published += [run_dir / corpus / name for name in ("corpus.jsonl", "funnel.json", "README.md")]
    for student in ("student-filtered", "student-unfiltered"):
        published += [run_dir / student / "README.md"]
    published += sorted(run_dir.glob("eval-*/summary.json"))
    local = [str(run_dir.parent), str(Path(__file__).resolve().parents[2]), str(Path.home())]
    for path in published:
        text = path.read_text(encoding="utf-8")
        assert not [p for p in local if p in text], f"{path} names a local path"
        assert "https://github.com/)" not in text and "](https://github.com/" not in text, f"{path}: placeholder link"
    rows = [json.loads(line) for line in (run_dir / "corpus-filtered" / "corpus.jsonl").read_text().splitlines()]
    assert {row["teacher"] for row in rows} == {"tiny-careful"}  # the profile's name, not the checkpoint's path


def test_with_the_correctness_filter_on_the_corpus_holds_only_verified_correct_samples(interrupted_run: dict,
                                                                                      tmp_path: Path) -> None:
    from distill.filters import filter_run, load_filter_config
    from distill.text import assistant_text

    run_dir: Path = interrupted_run["run_dir"]
    verified = [json.loads(line) for line in (run_dir / "samples" / "verified.jsonl").read_text().splitlines()]
    correct = {(s["problem_id"], assistant_text(s["reasoning"], s["content"])) for s in verified if s["correct"] is True}
    funnel = filter_run(run_dir / "samples", tmp_path / "corpus",
                        config=load_filter_config(None, ["decontamination.enabled=false", "truncation.enabled=false",
                                                         "format.enabled=false", "duplicates.exact=false",
                                                         "duplicates.near=false", "language.enabled=false",
                                                         "repetition.enabled=false"]))
    rows = [json.loads(line) for line in (tmp_path / "corpus" / "corpus.jsonl").read_text().splitlines()]
    assert funnel["removed"]["correctness"] == sum(s["correct"] is not True for s in verified)
    assert len(rows) == len(correct) and {(r["problem_id"], r["messages"][-1]["content"]) for r in rows} == correct
