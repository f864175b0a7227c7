"""The corpora a student trains on: `--data DIR` (one corpus) or the recipe's `data: [{path, weight}]`, each
read row by row, fingerprinted for the tokenized cache, and mixed by weight.

A weight is its corpus's expected share of the rows of an epoch (weights are normalised). An epoch of a mixture
has as many rows as all its corpora together (sum of n_i, after over-long rows are dropped); each row is drawn
from corpus i with probability w_i by a generator seeded with the recipe's seed, and a corpus yields its rows in
order, starting again from its first row when it runs out. So a corpus weighted above its natural share repeats
rows, one weighted below it contributes only its first rows, and the same seed gives the same rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.errors import ConfigError
from distill.jsonl import read_jsonl
from distill.train.data import check_row, corpus_path

if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset

    from distill.train.recipe import StudentRecipe

log = logging.getLogger(__name__)
MIB = 1 << 20


@dataclass(frozen=True)
class Corpus:
    """One corpus of the training data: its JSONL file, its normalised weight and the key that named it."""

    path: Path
    weight: float
    key: str  # "--data" or "data[i]", for error messages


def corpora(recipe: StudentRecipe, data_dir: str | Path | None) -> list[Corpus]:
    """The corpora to train on: `data_dir` alone when given (`--data` overrides `data:`), else the recipe's
    `data:` list with normalised weights; one clear error naming the key when a path holds no corpus."""
    if data_dir is not None:
        return [Corpus(corpus_path(data_dir).resolve(), 1.0, "--data")]
    if not recipe.data:
        raise ConfigError(f"{recipe.path}: no training data: pass --data DIR or give the recipe a "
                          "`data: [{path, weight}]` list")
    total = sum(float(entry.get("weight", 1.0)) for entry in recipe.data)
    found = []
    for i, entry in enumerate(recipe.data):
        key = f"data[{i}]"
        try:
            path = corpus_path(recipe.file(entry["path"]))
        except ConfigError as err:
            raise ConfigError(f"{recipe.path}: key '{key}.path': {err}") from err
        found.append(Corpus(path.resolve(), float(entry.get("weight", 1.0)) / total, key))
    return found


def fingerprint(path: Path) -> dict[str, Any]:
    """What identifies a corpus file's content for the cache: size, mtime and the sha256 of its first and last
    MiB. Not a full content hash: hashing a corpus larger than RAM costs a full read on every run, while any
    rewrite (`distill filter`, an editor, cp) changes the mtime, and appends or truncations change the size;
    the head and tail hashes also catch a copy that kept the mtime (cp -p) but not the bytes at either end."""
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(MIB))
        if stat.st_size > 2 * MIB:
            handle.seek(-MIB, os.SEEK_END)
            digest.update(handle.read(MIB))
        elif stat.st_size > MIB:
            digest.update(handle.read())
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head_tail_sha256": digest.hexdigest()}


def iter_rows(path: str | Path) -> Iterator[dict[str, str]]:
    """The checked rows of a corpus file, one at a time, as `{"messages": JSON text, "problem_id": str}`.

    The messages stay JSON text so that the Arrow schema is one string column whatever keys the messages
    carry (Arrow would fix a struct type from the first rows and refuse later rows with other keys)."""
    for line, row in read_jsonl(path):
        check_row(row, f"{path}:{line}")
        yield {"messages": json.dumps(row["messages"], ensure_ascii=False), "problem_id": str(row.get("problem_id", "?"))}


def mix(parts: list[Dataset], weights: list[float], seed: int) -> Dataset:
    """The mixture of tokenized corpora as the module docstring defines it: sum of n_i rows, drawn from corpus i
    with probability w_i, deterministic by `seed`. One corpus is returned as it is (no reordering)."""
    if len(parts) == 1:
        return parts[0]
    from datasets import interleave_datasets

    for part, weight in zip(parts, weights, strict=True):
        if len(part) == 0:
            raise ConfigError(f"a corpus of the mixture (weight {weight:.3g}) has no row that fits max_length")
    rows = sum(len(p) for p in parts)
    # all_exhausted draws until every corpus has given all its rows, so it draws at least sum(n_i) rows; its
    # first sum(n_i) draws are the epoch (each draw independent, corpus i with probability w_i).
    mixed = interleave_datasets(parts, probabilities=weights, seed=seed, stopping_strategy="all_exhausted")
    return mixed.select(range(rows))


def mix_streams(parts: list[IterableDataset], weights: list[float], seed: int) -> IterableDataset:
    """The streaming mixture: corpus i with probability w_i, by `seed`, restarting corpora that run out
    (training stops at max_steps, which streaming requires)."""
    if len(parts) == 1:
        return parts[0]
    from datasets import interleave_datasets

    return interleave_datasets(parts, probabilities=weights, seed=seed, stopping_strategy="all_exhausted")
