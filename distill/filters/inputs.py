"""Where `distill filter` reads from: a run directory's verified samples (or its shards), or one samples file,
each line with its byte offset, so the selection pass can seek back to the survivors of one problem instead
of holding every sample in memory. Inputs are only read, never changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.jsonl import scan_jsonl
from distill.problems import load_problems
from distill.records import Problem, Sample, from_dict
from distill.rundir import RunDir, run_problems


class SampleSource:
    """The samples a filter run reads: their files, and each row with its file number, line and offset."""

    def __init__(self, source: str | Path, keep: str | None = None) -> None:
        path = Path(source)
        if not path.exists():
            raise DistillError(f"{path}: no such run directory or samples file")
        self.source = path
        self.keep = keep
        self.run = RunDir.of(path)
        self._shards = False
        if path.is_dir():
            run = RunDir(path)
            self.run = run
            if run.verified_path.is_file():
                self.files = [run.verified_path]
            else:
                self.files = run.shard_files()
                self._shards = True
                if not self.files:
                    raise DistillError(f"{path}: a run directory needs verified.jsonl or samples/*.jsonl; found neither")
        else:
            self.files = [path]

    def rows(self) -> Iterator[tuple[int, int, int, dict[str, Any]]]:
        """`(file_number, line, byte_offset, row)` for every sample; a run's shards follow the run directory's
        rules (an incomplete last line of a shard being written is skipped, a key stored twice reported)."""
        if self._shards:
            assert self.run is not None
            yield from self.run.scan(self.keep, files=self.files)
            return
        for line, offset, row in scan_jsonl(self.files[0]):
            yield 0, line, offset, row

    def manifest(self) -> dict[str, Any]:
        """The run's manifest, or {} for a file outside any run."""
        return self.run.manifest() if self.run is not None and self.run.is_run() else {}

    def problems(self, override: str | None) -> tuple[list[Problem], str]:
        """The problems: `--problems`, else the run's recorded problem set."""
        if override is None and self.run is None:
            raise DistillError(f"{self.source}: no problem set: the samples file is not in a run directory; "
                               "pass --problems NAME|PATH (the corpus and several filters need the prompts)")
        if override is not None:
            return load_problems(override), override
        return run_problems(self.run, None, self.source)


_SAMPLE_FIELDS = tuple(f.name for f in dataclasses.fields(Sample))


def parse_sample(obj: dict[str, Any], where: str, trusted: bool = False) -> Sample:
    """A Sample from a row; extra columns (a previous `filter`, a `pass_rate`, verdict `details`) are ignored.

    `trusted` skips type checks, for rows this run already validated once (the second pass).
    """
    if trusted:
        return Sample(**{k: obj[k] for k in _SAMPLE_FIELDS if k in obj})
    return from_dict(Sample, obj, where=where, extra="ignore")


def plain(record: Any) -> dict[str, Any]:
    """A record's fields as a shallow dict (dataclasses.asdict deep-copies, which is slow at 1M rows)."""
    return dict(record.__dict__)
