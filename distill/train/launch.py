"""Multi-process training: `train()` relaunches itself here under torchrun (DDP; gloo on CPU) or, for
FSDP and DeepSpeed ZeRO-3, under `accelerate launch` with the recipe's accelerate config.

Each rank runs `distill.train.worker` (python -m torch.distributed.run --nproc_per_node P -m
distill.train.worker --recipe-json R.json --data DIR --out DIR [--max-steps S]), which calls `train()`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from distill.atomic import atomic_write_json
from distill.errors import DistillError
from distill.train.recipe import StudentRecipe
from distill.train.sft import materialize_tiny

log = logging.getLogger(__name__)


def command_line(recipe: StudentRecipe, recipe_json: Path, data: Path, out: Path, processes: int,
                 max_steps: int | None) -> list[str]:
    """The launcher command: torchrun for DDP, accelerate launch for FSDP/ZeRO-3."""
    tail = ["--recipe-json", str(recipe_json), "--data", str(data), "--out", str(out)]
    if max_steps is not None:
        tail += ["--max-steps", str(max_steps)]
    if recipe.distributed == "ddp":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                "-m", "distill.train.worker", *tail]
    config = str(recipe.file(recipe.accelerate_config or ""))
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config,
            "--num_processes", str(processes), "-m", "distill.train.worker", *tail]


def accelerate_plugin(config_file: str | Path) -> Any:
    """The FSDP or DeepSpeed plugin that `accelerate launch --config_file FILE` would give each rank: the
    launcher's own validation and environment, then the plugin built from that environment. Runs on CPU,
    so the GPU-only configs are checked here without a GPU."""
    from unittest import mock

    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(config_file), "-m", "distill.train.worker"])
    args, defaults, from_config = _validate_launch_command(args)
    if args.use_fsdp:
        env = prepare_multi_gpu_env(args)
    elif args.use_deepspeed:
        fields = list(defaults.deepspeed_config.keys()) if defaults else []
        args.deepspeed_fields_from_accelerate_config = ",".join(fields + (["mixed_precision"] if from_config else []))
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        raise DistillError(f"{config_file}: neither FSDP nor DeepSpeed")
    with mock.patch.dict(os.environ, {k: v for k, v in env.items() if k.startswith(("FSDP", "ACCELERATE"))}):
        return FullyShardedDataParallelPlugin() if args.use_fsdp else DeepSpeedPlugin()


def launch(recipe: StudentRecipe, data: Path, out: Path, processes: int, max_steps: int | None) -> Path:
    """Run `processes` training processes and wait; a failure raises with the exit status."""
    out.mkdir(parents=True, exist_ok=True)
    if recipe.model == "tiny":
        materialize_tiny(recipe, out)  # before the ranks start, so they all load one base
    recipe_json = out / "launch_recipe.json"
    atomic_write_json(recipe_json, dataclasses.asdict(recipe))
    cmd = command_line(recipe, recipe_json, data, out, processes, max_steps)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    log.info("launching %d processes: %s", processes, " ".join(cmd))
    status = subprocess.run(cmd, env=env).returncode
    if status != 0:
        raise DistillError(f"the {processes}-process training run failed (exit status {status}); see the log above")
    return out
