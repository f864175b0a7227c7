"""The run store: `manifest.json` plus append-only JSONL shards under `samples/`, one line per
completion, flushed as it arrives. A torn last line is repaired on open; a restart sees every key
already written (in any shard file) and sends only the missing ones; several hosts' shards merge."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from distill.errors import ConfigError, DistillError
from distill.jsonl import JsonlWriter, read_jsonl, repair_torn_tail
from distill.records import SCHEMA_VERSION, Sample, from_dict

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
SAMPLES_DIR = "samples"


def parse_shard(text: str | None) -> tuple[int, int]:
    """Parse `I/N` (0 <= I < N) into `(I, N)`; None means the whole run, `(0, 1)`.

    >>> parse_shard("2/8")
    (2, 8)
    """
    if text is None:
        return (0, 1)
    index, sep, count = text.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        shard = (-1, 0)
    if not sep or not 0 <= shard[0] < shard[1]:
        raise ConfigError(f"--shard {text}: expected I/N with 0 <= I < N, for example 0/4")
    return shard


def in_shard(problem_id: str, shard: tuple[int, int]) -> bool:
    """Whether a problem belongs to a shard: a hash of its id, so the split ignores file order."""
    index, count = shard
    if count == 1:
        return True
    digest = hashlib.sha256(problem_id.encode()).digest()
    return int.from_bytes(digest[:8], "little") % count == index


def shard_file(run_dir: str | Path, shard: tuple[int, int]) -> Path:
    """The JSONL file one shard appends to."""
    return Path(run_dir) / SAMPLES_DIR / f"shard-{shard[0]}-of-{shard[1]}.jsonl"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The manifest of a run: teacher, backend, sampling config and the problem set (source, fingerprint)."""
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        raise DistillError(f"{run_dir}: not a run directory (no {MANIFEST})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DistillError(f"{path}: invalid JSON: {err.msg}") from err


def sample_files(run_dir: str | Path) -> list[Path]:
    """Every samples file of a run, in a stable order."""
    return sorted((Path(run_dir) / SAMPLES_DIR).glob("*.jsonl"))


def read_samples(run_dir: str | Path, repair: bool = True) -> Iterator[Sample]:
    """Yield every sample of every shard file of a run (torn last lines are repaired first)."""
    for path in sample_files(run_dir):
        if repair:
            repair_torn_tail(path)
        for line, row in read_jsonl(path):
            yield from_dict(Sample, row, where=f"{path}:{line}")


def check_compatible(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse to resume a run with another teacher, sampling config or problem set."""
    checks = [("teacher", "teacher_identity"), ("sampling config", "sampling_identity"), ("problem set", "problems_fingerprint")]
    for label, key in checks:
        if old.get(key) != new.get(key):
            a, b = old.get(key), new.get(key)
            if isinstance(a, dict) and isinstance(b, dict):
                diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
                detail = "; ".join(f"{k}: {a.get(k)!r} in the run, {b.get(k)!r} now" for k in diff)
            else:
                detail = f"{a!r} in the run, {b!r} now"
            raise ConfigError(f"{path}: refusing to resume with a different {label} ({detail}); "
                              "use a new --out directory, or the same settings as the run")


class RunStore:
    """An open run directory: a checked manifest, the keys already written, and this shard's writer."""

    def __init__(self, run_dir: str | Path, manifest: dict[str, Any], shard: tuple[int, int] = (0, 1)) -> None:
        self.run_dir = Path(run_dir)
        self.shard = shard
        (self.run_dir / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
        path = self.run_dir / MANIFEST
        if path.exists():
            check_compatible(path, read_manifest(self.run_dir), manifest)
            self.manifest = read_manifest(self.run_dir)
        else:
            self.manifest = {"schema_version": SCHEMA_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             **manifest}
            write_json_atomic(path, self.manifest)
        self.path = shard_file(self.run_dir, shard)
        self._lock = self._take_lock()
        for file in sample_files(self.run_dir):
            repair_torn_tail(file)
        self.samples: dict[tuple[str, int], Sample] = {}
        for sample in read_samples(self.run_dir, repair=False):
            self.samples.setdefault(sample.key, sample)
        self._writer = JsonlWriter(self.path)

    def _take_lock(self) -> IO[str]:
        """One process per shard: a second one on the same shard would write keys twice."""
        handle = (self.run_dir / SAMPLES_DIR / f".{self.path.stem}.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            handle.close()
            raise DistillError(f"{self.path}: another process is writing this shard") from err
        return handle

    def write(self, sample: Sample) -> None:
        """Append one sample and flush it; a key already stored is an engine bug, so it fails loudly."""
        if sample.key in self.samples:
            raise DistillError(f"{self.path}: key {sample.key} is already stored")
        self._writer.write(sample)
        self.samples[sample.key] = sample

    def close(self) -> None:
        """Close the shard file and release the shard lock."""
        self._writer.close()
        self._lock.close()

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write summary.json (whole store) atomically; sharded runs also keep one file per shard."""
        if self.shard[1] > 1:
            write_json_atomic(self.run_dir / f"summary-shard-{self.shard[0]}-of-{self.shard[1]}.json", summary)
        path = self.run_dir / SUMMARY
        write_json_atomic(path, summary)
        return path
