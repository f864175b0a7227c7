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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.atomic import atomic_write_json
from distill.errors import ConfigError, DistillError
from distill.train.recipe import StudentRecipe
from distill.train.sft import materialize_tiny

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Machines:
    """The machines of a multi-node run, as torchrun and accelerate name them: how many, this one's rank,
    and the address and port of machine 0 (the rendezvous)."""

    count: int = 1
    rank: int = 0
    main_ip: str | None = None
    main_port: int = 29500

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.rank < self.count:
            raise ConfigError(f"--machine-rank {self.rank} must be in 0..{self.count - 1} (--num-machines {self.count})")
        if self.count > 1 and not self.main_ip:
            raise ConfigError("--num-machines > 1 needs --main-process-ip (the address of machine 0)")


def command_line(recipe: StudentRecipe, recipe_json: Path, data: Path | None, out: Path, processes: int,
                 max_steps: int | None, machines: Machines | None = None) -> list[str]:
    """The launcher command: torchrun for DDP, accelerate launch for FSDP/ZeRO-3; `processes` counts every
    process over every machine."""
    machines = machines or Machines()
    tail = ["--recipe-json", str(recipe_json), *(["--data", str(data)] if data is not None else []), "--out", str(out)]
    if max_steps is not None:
        tail += ["--max-steps", str(max_steps)]
    per_machine = processes // machines.count
    if recipe.distributed == "ddp":
        if machines.count == 1:
            where = ["--standalone"]
        else:
            where = [f"--nnodes={machines.count}", f"--node_rank={machines.rank}",
                     f"--master_addr={machines.main_ip}", f"--master_port={machines.main_port}"]
        return [sys.executable, "-m", "torch.distributed.run", *where, f"--nproc_per_node={per_machine}",
                "-m", "distill.train.worker", *tail]
    config = str(recipe.file(recipe.accelerate_config or ""))
    where = []
    if machines.count > 1:
        where = ["--num_machines", str(machines.count), "--machine_rank", str(machines.rank),
                 "--main_process_ip", str(machines.main_ip), "--main_process_port", str(machines.main_port)]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config,
            "--num_processes", str(processes), *where, "-m", "distill.train.worker", *tail]


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


def launch(recipe: StudentRecipe, data: Path | None, out: Path, processes: int, max_steps: int | None,
           machines: Machines | None = None) -> Path:
    """Run this machine's share of `processes` training processes and wait; a failure raises with the exit
    status. On several machines OUT must be on a shared file system (machine 0's rank 0 saves)."""
    machines = machines or Machines()
    out.mkdir(parents=True, exist_ok=True)
    if recipe.model == "tiny" and machines.rank == 0:
        materialize_tiny(recipe, out)  # before the ranks start, so they all load one base
    # One file per machine, written atomically: machines that share OUT never read a half-written one.
    recipe_json = out / f"launch_recipe.{machines.rank}.json"
    atomic_write_json(recipe_json, dataclasses.asdict(recipe))
    cmd = command_line(recipe, recipe_json, data, out, processes, max_steps, machines)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    log.info("launching %d processes: %s", processes, " ".join(cmd))
    status = subprocess.run(cmd, env=env).returncode
    if status != 0:
        where = f" on machine {machines.rank} of {machines.count}" if machines.count > 1 else ""
        raise DistillError(f"the {processes}-process training run failed{where} (exit status {status}); see the log above")
    return out
