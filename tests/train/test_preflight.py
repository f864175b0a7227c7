"""`distill train`'s preflight refuses a run that will not fit (one line, naming the recipe), `--force`
overrides it, the tiny recipes are never refused on CPU, and every shipped student recipe fits the
hardware it states by the planner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import ConfigError
from distill.plan.hardware import Hardware
from distill.plan.preflight import plan_recipe, preflight
from distill.train import train
from distill.train.recipe import load_student_recipe

REPO = Path(__file__).resolve().parents[2]
STUDENTS = REPO / "students"
SHIPPED = sorted(p for p in STUDENTS.glob("*.yaml") if not p.name.startswith("tiny"))
SMALL = ["tiny.hidden_size=32", "tiny.num_heads=2", "tiny.num_kv_heads=1", "max_length=256", "logging_steps=1",
         "save_steps=100"]
TOO_SMALL_GPU = ["hardware={gpus_per_node: 1, gpu_memory_gib: 0.001}"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_recipe_states_hardware_that_it_fits(path: Path) -> None:
    recipe = load_student_recipe(path)
    hw = recipe.hardware
    assert hw.stated(), f"{path.name} states no hardware"
    assert recipe.num_processes == hw.gpus_per_node * hw.nodes
    result = plan_recipe(recipe, Hardware(hw.gpus_per_node, hw.gpu_memory_gib, hw.nodes))
    assert result.fits, f"{path.name}: {result.verdict()}"
    assert "Fits" in path.read_text() and f"--student students/{path.name}" in path.read_text()
    if recipe.mode == "full" and recipe.max_length >= 32768 and recipe.declared_context() and \
            result.workload.student.shape.total_params() > 5e9:
        assert recipe.distributed in ("fsdp", "deepspeed") and result.setup.fused_loss  # 7B+ at 32k


def test_the_preflight_refuses_a_run_that_does_not_fit_and_force_overrides(tmp_path: Path) -> None:
    recipe = load_student_recipe(STUDENTS / "tiny.yaml", SMALL + TOO_SMALL_GPU)
    with pytest.raises(ConfigError, match=r"tiny.yaml: the memory plan says this run will not fit: .* GiB per GPU"):
        preflight(recipe, processes=1)
    assert preflight(recipe, processes=1, force=True) is not None


def test_cli_train_refuses_in_one_line_and_trains_with_force(toy_corpus: Path, tmp_path: Path) -> None:
    args = ["train", "--student", str(STUDENTS / "tiny.yaml"), "--data", str(toy_corpus), "--out", str(tmp_path / "o"),
            "--max-steps", "1", "--set", "hardware={gpus_per_node: 1, gpu_memory_gib: 0.001}"]
    for setting in SMALL:
        args += ["--set", setting]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code != 0 and isinstance(refused.exception, ConfigError)
    assert "will not fit" in str(refused.exception) and "\n" not in str(refused.exception)
    assert not (tmp_path / "o" / "train_metrics.json").exists()
    forced = CliRunner().invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads((tmp_path / "o" / "train_metrics.json").read_text())["global_step"] == 1


def test_on_cpu_the_preflight_checks_ram_and_passes_the_tiny_recipes() -> None:
    for name in ("tiny.yaml", "tiny-student.yaml", "tiny-teacher.yaml"):
        result = preflight(load_student_recipe(STUDENTS / name), processes=2)
        assert result is not None and result.setup.device == "cpu" and result.fits
        assert result.breakdown.total < 2**30  # well under a GiB per process


def test_context_parallelism_refuses_packing_and_liger_needs_its_kernels(toy_corpus: Path, tmp_path: Path) -> None:
    fsdp = ["distributed=fsdp", "accelerate_config=accelerate/fsdp.yaml", "context_parallel_size=2"]
    with pytest.raises(ConfigError, match="would let packed documents attend to each other"):
        load_student_recipe(STUDENTS / "tiny.yaml", fsdp)
    with pytest.raises(ConfigError, match="context_parallel_size > 1 needs distributed: fsdp"):
        load_student_recipe(STUDENTS / "tiny.yaml", ["context_parallel_size=2", "packing=false"])
    assert load_student_recipe(STUDENTS / "tiny.yaml", [*fsdp, "packing=false"]).context_parallel_size == 2
    with pytest.raises(ConfigError, match="use_liger_kernel"):
        train(STUDENTS / "tiny.yaml", toy_corpus, tmp_path / "liger", max_steps=1, settings=["use_liger_kernel=true"])
