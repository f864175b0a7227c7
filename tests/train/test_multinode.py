"""Two "nodes" on 127.0.0.1 (one gloo process each, torchrun's static rendezvous on machine 0) train with
the same losses as one node with two processes: same world size, seed and data order."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from distill.errors import ConfigError
from distill.train.launch import Machines, command_line
from distill.train.recipe import load_student_recipe

REPO = Path(__file__).resolve().parents[2]
SETTINGS = ["tiny.hidden_size=32", "tiny.num_layers=2", "tiny.num_heads=2", "tiny.num_kv_heads=1",
            "tiny.max_positions=512", "max_length=256", "per_device_train_batch_size=4", "learning_rate=5e-3",
            "warmup_ratio=0.0", "lr_scheduler_type=constant", "logging_steps=1", "save_steps=100"]


def distill_train(out: Path, corpus: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "distill", "train", "--student", str(REPO / "students" / "tiny.yaml"),
            "--data", str(corpus), "--out", str(out), "--max-steps", "10", "--num-processes", "2", *extra]
    for setting in SETTINGS:
        args += ["--set", setting]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def losses(out: Path) -> list[float]:
    return [h["loss"] for h in json.loads((out / "train_metrics.json").read_text())["log_history"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_on_loopback_train_like_one_node(toy_corpus: Path, tmp_path: Path) -> None:
    port = str(free_port())
    # All at once (the reference and both nodes): most of the time is each process starting up.
    runs = [distill_train(tmp_path / "one", toy_corpus)]
    runs += [distill_train(tmp_path / "two", toy_corpus, "--num-machines", "2", "--machine-rank", str(rank),
                           "--main-process-ip", "127.0.0.1", "--main-process-port", port) for rank in (0, 1)]
    for run in runs:
        output, _ = run.communicate(timeout=600)
        assert run.returncode == 0, output[-3000:]

    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 10
    for a, b in zip(one, two, strict=True):
        assert abs(a - b) <= 1e-5 * abs(a)
    assert json.loads((tmp_path / "two" / "train_metrics.json").read_text())["processes"] == 2


def test_multi_node_launch_commands(tmp_path: Path) -> None:
    recipe = load_student_recipe(REPO / "students" / "tiny.yaml")
    machines = Machines(count=2, rank=1, main_ip="10.0.0.1", main_port=29511)
    cmd = command_line(recipe, tmp_path / "r.json", tmp_path, tmp_path, 16, None, machines)
    assert "--standalone" not in cmd and "--nnodes=2" in cmd and "--node_rank=1" in cmd
    assert "--master_addr=10.0.0.1" in cmd and "--master_port=29511" in cmd and "--nproc_per_node=8" in cmd
    fsdp = load_student_recipe(REPO / "students" / "tiny.yaml", ["distributed=fsdp",
                                                                 "accelerate_config=accelerate/fsdp.yaml"])
    cmd = command_line(fsdp, tmp_path / "r.json", tmp_path, tmp_path, 16, None, machines)
    at = cmd.index("--num_machines")
    assert cmd[at:at + 8] == ["--num_machines", "2", "--machine_rank", "1", "--main_process_ip", "10.0.0.1",
                              "--main_process_port", "29511"]
    assert cmd[cmd.index("--num_processes") + 1] == "16"  # accelerate counts every process
    with pytest.raises(ConfigError, match="--main-process-ip"):
        Machines(count=2, rank=0)
    with pytest.raises(ConfigError, match="--machine-rank 2"):
        Machines(count=2, rank=2, main_ip="x")
