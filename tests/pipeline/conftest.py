"""A tiny pipeline run shared by the pipeline and notebook tests: the bundled teacher and base student,
a handful of problems, two training steps; interrupted once during evaluation and resumed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


SYSTEM = "You are a careful calculator."
TEMPLATE = "Problem: {prompt}\n{suffix}"


def teacher_profile(tmp: Path) -> Path:
    """The tiny teacher behind a profile with a system prompt and a prompt template, so that the corpus test
    can see that each row carries the prompt exactly as the teacher saw it."""
    (tmp / "template.txt").write_text(TEMPLATE, encoding="utf-8")
    data = yaml.safe_load((REPO / "teachers" / "tiny.yaml").read_text(encoding="utf-8"))
    data.update(name="tiny-careful", model=str(REPO / "teachers" / "tiny"), system_prompt=SYSTEM,
                prompt_template="template.txt")
    path = tmp / "careful.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def tiny_recipe(tmp: Path, **changes: object) -> Path:
    """A pipeline recipe small enough for the tests (a few seconds a stage on one core), with its teacher
    profile beside it."""
    teacher_profile(tmp)
    data = {
        "name": "tiny-test",
        "run_dir": str(tmp / "run"),
        "train_problems": {"toy_n": 6, "toy_seed": 7, "difficulty": [1, 1]},
        "heldout": {"toy_n": 4, "toy_seed": 8, "difficulty": [1, 1]},
        "sample": {"teacher": "careful.yaml", "n": 2, "max_new_tokens": 96},  # beside the recipe
        "train": {"student": "tiny-student", "max_steps": 2, "checkpoints": 2},
        "validation": {"problems": 2, "max_new_tokens": 32},
        "eval": {"k": 1, "max_new_tokens": 96},
        # Correctness, format and truncation filters off: the stages' chaining and resume are under test here
        # (the filters have their own tests), and the corpus must not depend on how good the teacher is.
        "set": ["filters.decontamination.enabled=false", "filters.correctness.enabled=false",
                "filters.format.enabled=false", "filters.truncation.enabled=false",
                "student.save_steps=1", "student.logging_steps=1"],
    }
    data.update(changes)
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def interrupted_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the tiny pipeline, crash it in the middle of evaluation, then resume it."""
    import torch

    import distill.pipeline as pipeline

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("pipeline")
    recipe_path = tiny_recipe(tmp)
    real_evaluate = pipeline._evaluate

    def crashing(name: str, *args: object, **kwargs: object) -> None:
        if name == "filtered":
            raise KeyboardInterrupt("killed during the evaluation of the filtered student")
        real_evaluate(name, *args, **kwargs)

    pipeline._evaluate = crashing
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.run_pipeline(pipeline.load_recipe(recipe_path))
    finally:
        pipeline._evaluate = real_evaluate
    run_dir = tmp / "run"
    before = {p.relative_to(run_dir): p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    resumed = pipeline.run_pipeline(pipeline.load_recipe(recipe_path))
    return {"tmp": tmp, "recipe": recipe_path, "run_dir": run_dir, "before": before, "resumed": resumed}
