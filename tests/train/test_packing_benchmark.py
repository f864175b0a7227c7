"""benchmarks/train.py stays fair: its synthetic corpus is distinct problems with long-tailed lengths (no
trace repeated to lengthen it), and its arms get the recipe's batch with matching step counts."""

from __future__ import annotations

import importlib.util
import math
import statistics
from pathlib import Path

from distill.train.data import build_dataset, tokenize_row
from distill.train.recipe import load_student_recipe
from distill.train.sft import base_path, load_tokenizer

from .conftest import REPO


def load_benchmark():
    """benchmarks/train.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_train", REPO / "benchmarks" / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_synthetic_rows_are_distinct_problems_with_long_tailed_lengths(tmp_path: Path) -> None:
    bench = load_benchmark()
    recipe = load_student_recipe("tiny", ["max_length=1024"])
    tokenizer = load_tokenizer(recipe, base_path(recipe, tmp_path))
    rows = bench.synthetic_rows(80, 1, tokenizer, 1024, 150, 1.0)
    prompts = [r["messages"][0]["content"] for r in rows]
    traces = [r["messages"][1]["content"] for r in rows]
    assert len(set(prompts)) == len(set(traces)) == 80
    for trace in traces:  # every worked line is its own step: nothing repeated inside a trace
        lines = trace.split("</think>")[0].splitlines()[1:]
        assert len(set(lines)) == len(lines)
    lengths = sorted(len(tokenize_row(tokenizer, r["messages"])[0]) for r in rows)
    assert lengths[-1] <= 1024 and lengths[0] < 150 < lengths[-1]
    assert lengths[int(0.9 * len(lengths))] > 2 * statistics.median(lengths)  # a long tail, as R1's traces
    dataset, report = build_dataset(rows, tokenizer, 1024, "drop")
    assert report.overlong == 0 and len(dataset) == 80


def test_arms_keep_the_recipe_batch_when_steps_can_match() -> None:
    bench = load_benchmark()
    # The full quickstart corpus: 2,700 rows in 1,298 packed rows; batch 4 against 2 packed rows.
    assert bench.match_steps(2700, 1298, 4) == (4, 2)
    for rows, packs, wanted in ((200, 37, 8), (540, 264, 4), (24, 13, 8)):
        batch, packed_batch = bench.match_steps(rows, packs, wanted)
        steps, packed_steps = math.ceil(rows / batch), math.ceil(packs / packed_batch)
        assert abs(packed_steps - steps) <= 0.04 * steps
