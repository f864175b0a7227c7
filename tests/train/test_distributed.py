"""Two processes on CPU (torchrun, gloo, DDP): the loss falls and the saved checkpoint loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from distill.train import train
from distill.train.launch import command_line
from distill.train.recipe import load_student_recipe


@pytest.mark.slow
def test_two_processes_train_and_save_a_loadable_checkpoint(tiny_recipe: Path, toy_corpus: Path, tmp_path: Path,
                                                            fast, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = Path(train(tiny_recipe, toy_corpus, tmp_path / "ddp", max_steps=4, num_processes=2, settings=fast)["out_dir"])
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["global_step"] == 4
    seen = [h["loss"] for h in metrics["log_history"]]
    assert seen[-1] < seen[0]
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.hidden_size == 32


def test_launch_commands(tiny_recipe: Path, tmp_path: Path) -> None:
    recipe = load_student_recipe(tiny_recipe)
    cmd = command_line(recipe, tmp_path / "r.json", tmp_path, tmp_path, 2, 5)
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"] and "--nproc_per_node=2" in cmd
    assert cmd[-2:] == ["--max-steps", "5"]
    fsdp = load_student_recipe(tiny_recipe, ["distributed=fsdp", "accelerate_config=accelerate/fsdp.yaml"])
    cmd = command_line(fsdp, tmp_path / "r.json", tmp_path, tmp_path, 8, None)
    assert "accelerate.commands.launch" in cmd and cmd[cmd.index("--config_file") + 1].endswith("students/accelerate/fsdp.yaml")
