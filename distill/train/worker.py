"""One rank of a multi-process training run: `train()` relaunches itself as
`python -m torch.distributed.run ... -m distill.train.worker --recipe-json R.json [--data DIR] --out DIR [--max-steps S]`
(see `distill.train.launch`); each rank rebuilds the recipe and calls `train()`, which sees LOCAL_RANK and does
not relaunch."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import torch

from distill.train.core import train
from distill.train.recipe import recipe_from_mapping


def main(argv: list[str] | None = None) -> None:
    """Parse the launcher's arguments and train this rank."""
    parser = argparse.ArgumentParser(prog="distill.train.worker")
    parser.add_argument("--recipe-json", required=True)
    parser.add_argument("--data", default=None)  # absent: the recipe's data: list
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-steps", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data = json.loads(Path(args.recipe_json).read_text(encoding="utf-8"))
    train(recipe_from_mapping(data, args.recipe_json), args.data, args.out, max_steps=args.max_steps)


if __name__ == "__main__":
    main()
