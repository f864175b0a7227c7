"""Multi-process training: `train()` relaunches itself here under torchrun (DDP; gloo on CPU) or, for
FSDP and DeepSpeed ZeRO-3, under `accelerate launch` with the recipe's accelerate config.

Usage (what `train()` runs): python -m torch.distributed.run --nproc_per_node P -m distill.train.launch
    --recipe-json R.json --data DIR --out DIR [--max-steps S]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from distill.errors import DistillError
from distill.train.recipe import StudentRecipe, recipe_from_mapping

log = logging.getLogger(__name__)


def command_line(recipe: StudentRecipe, recipe_json: Path, data: Path, out: Path, processes: int,
                 max_steps: int | None) -> list[str]:
    """The launcher command: torchrun for DDP, accelerate launch for FSDP/ZeRO-3."""
    tail = ["--recipe-json", str(recipe_json), "--data", str(data), "--out", str(out)]
    if max_steps is not None:
        tail += ["--max-steps", str(max_steps)]
    if recipe.distributed == "ddp":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                "-m", "distill.train.launch", *tail]
    config = recipe.resolve(recipe.accelerate_config or "")
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config,
            "--num_processes", str(processes), "-m", "distill.train.launch", *tail]


def launch(recipe: StudentRecipe, data: Path, out: Path, processes: int, max_steps: int | None) -> Path:
    """Run `processes` training processes and wait; a failure raises with the exit status."""
    from distill.train.sft import materialize_tiny

    out.mkdir(parents=True, exist_ok=True)
    if recipe.model == "tiny":
        materialize_tiny(recipe, out)  # before the ranks start, so they all load one base
    recipe_json = out / "launch_recipe.json"
    recipe_json.write_text(json.dumps(dataclasses.asdict(recipe), indent=2), encoding="utf-8")
    cmd = command_line(recipe, recipe_json, data, out, processes, max_steps)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    log.info("launching %d processes: %s", processes, " ".join(cmd))
    status = subprocess.run(cmd, env=env).returncode
    if status != 0:
        raise DistillError(f"the {processes}-process training run failed (exit status {status}); see the log above")
    return out


def main(argv: list[str] | None = None) -> None:
    """One rank: rebuild the recipe and call `train()` (which sees LOCAL_RANK and does not relaunch)."""
    parser = argparse.ArgumentParser(prog="distill.train.launch")
    parser.add_argument("--recipe-json", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-steps", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from distill.train.core import train

    data = json.loads(Path(args.recipe_json).read_text(encoding="utf-8"))
    recipe = recipe_from_mapping(data, args.recipe_json)
    train(recipe, args.data, args.out, max_steps=args.max_steps)


if __name__ == "__main__":
    main()
