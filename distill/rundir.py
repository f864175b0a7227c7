"""The run directory: the one owner of its layout, manifest, shards, locks, torn bytes, verdicts and summaries.

    RUN/manifest.json                   teacher (public id), sampling, problem set, shard count, schema
    RUN/samples/shard-I-of-N.jsonl      append-only samples, one line each, flushed as they arrive
    RUN/samples/shard-I-of-N.<side>     side files of a shard (the logprob sidecar), committed by the line
    RUN/samples/.shard-I-of-N.lock      held (flock) by the one process writing that shard
    RUN/torn/                           bytes a crash left half-written, kept aside on resume, never deleted
    RUN/verified.jsonl                  every sample with its verdict (`distill verify`)
    RUN/summary.json                    the sampling summary (and summary-shard-I-of-N.json per shard)
    RUN/.run.lock                       taken while the manifest or a summary is written

The layout is the same whether a stage runs alone or under `distill run`. Rules every writer follows:
- Readers never modify a file. A shard's last line without its newline is a record when it parses; when it
  does not, it is skipped with a warning while the shard's writer holds its lock (it is being written), and
  is an error naming the file and line otherwise.
- A writer repairs only its own shard, under its lock, and moves the torn bytes to `torn/`.
- The commit rule: a side record (a logprob sidecar) is flushed before its sample line; the sample line is
  the commit. On resume, side bytes that no committed line refers to move to `torn/`.
- The manifest records the shard count; a process with another count is refused.
- Several hosts' shards merge: a key found twice is reported with both files and lines; identical copies are a
  warning, differing ones an error unless `keep="first"`.

Locks are `flock` locks: they hold on local file systems. On NFS or Lustre, `flock` may be emulated or
disabled (mount options differ); there, give each host its own shard and never run two writers on one shard.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from distill import faults
from distill.atomic import atomic_open, atomic_write_json, fsync_dir
from distill.errors import ConfigError, DistillError
from distill.jsonl import JsonlWriter, scan_jsonl
from distill.problems import SHIPPED, load_problems
from distill.records import SCHEMA_VERSION, Problem, Sample, from_dict, to_dict

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SAMPLES = "samples"
TORN = "torn"
VERIFIED = "verified.jsonl"
SUMMARY = "summary.json"
RUN_LOCK = ".run.lock"
Shard = tuple[int, int]


def parse_shard(text: str | None) -> Shard:
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


def in_shard(problem_id: str, shard: Shard) -> bool:
    """Whether a problem belongs to a shard: a hash of its id, so the split ignores file order."""
    index, count = shard
    if count == 1:
        return True
    digest = hashlib.sha256(problem_id.encode()).digest()
    return int.from_bytes(digest[:8], "little") % count == index


def check_compatible(path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse to resume a run with another teacher, sampling config or problem set."""
    checks = [("teacher", "teacher_identity"), ("sampling config", "sampling_identity"),
              ("problem set", "problems_fingerprint")]
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


@dataclass
class ReadReport:
    """What reading a run's samples met besides samples: tails being written, duplicate keys."""

    incomplete_tails: list[str] = field(default_factory=list)
    identical_duplicates: int = 0
    kept_first: int = 0


def _digest(row: dict[str, Any]) -> bytes:
    return hashlib.sha256(json.dumps(row, sort_keys=True, ensure_ascii=False).encode()).digest()[:16]


class RunDir:
    """A run directory on disk (it need not exist yet)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # ------------------------------------------------------------------ layout

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def samples_dir(self) -> Path:
        return self.path / SAMPLES

    @property
    def torn_dir(self) -> Path:
        return self.path / TORN

    @property
    def verified_path(self) -> Path:
        return self.path / VERIFIED

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY

    def shard_path(self, shard: Shard) -> Path:
        """The JSONL file one shard appends to."""
        return self.samples_dir / f"shard-{shard[0]}-of-{shard[1]}.jsonl"

    def side_path(self, shard: Shard, kind: str) -> Path:
        """A side file of a shard (`kind` is its suffix, e.g. `logprobs`), committed by the shard's lines."""
        return self.samples_dir / f"shard-{shard[0]}-of-{shard[1]}.{kind}"

    def lock_path(self, shard_file: Path) -> Path:
        """The lock file that the writer of `shard_file` holds."""
        return shard_file.with_name(f".{shard_file.stem}.lock")

    def shard_files(self) -> list[Path]:
        """Every samples file of the run, in a stable order."""
        return sorted(self.samples_dir.glob("*.jsonl"))

    @classmethod
    def of(cls, source: str | Path) -> RunDir | None:
        """The run a path belongs to: the directory itself, or the folder of a file beside its manifest."""
        path = Path(source)
        for candidate in (path, path.parent):
            if candidate.is_dir() and (candidate / MANIFEST).is_file():
                return cls(candidate)
        return None

    # ------------------------------------------------------------------ manifest

    def is_run(self) -> bool:
        """Whether the directory holds a run (a manifest)."""
        return self.manifest_path.is_file()

    def manifest(self) -> dict[str, Any]:
        """The manifest: teacher, backend, sampling config, problem set, shard count."""
        if not self.manifest_path.is_file():
            raise DistillError(f"{self.path}: not a run directory (no {MANIFEST})")
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DistillError(f"{self.manifest_path}: invalid JSON: {err.msg}") from err

    @contextlib.contextmanager
    def run_lock(self) -> Iterator[None]:
        """Hold the run-level lock (manifest and summary writes), waiting for another holder."""
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / RUN_LOCK).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def start(self, manifest: dict[str, Any], shards: int = 1) -> dict[str, Any]:
        """Create the manifest, or check that a resumed run matches it (teacher, sampling, problems, shard
        count); returns the manifest as stored."""
        with self.run_lock():
            if self.manifest_path.is_file():
                stored = self.manifest()
                check_compatible(self.manifest_path, stored, manifest)
                declared = stored.get("shards")
                if declared is not None and declared != shards:
                    raise ConfigError(f"{self.manifest_path}: this run is split into {declared} shards; a process "
                                      f"with --shard I/{shards} would write other keys twice. Use --shard I/{declared}")
                return stored
            stored = {"schema_version": SCHEMA_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      **manifest, "shards": shards}
            atomic_write_json(self.manifest_path, stored)
            return stored

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Write a whole manifest (stages that create a run in one go, such as `distill import`)."""
        with self.run_lock():
            atomic_write_json(self.manifest_path, manifest)

    def write_summary(self, summary: dict[str, Any], shard: Shard = (0, 1)) -> Path:
        """Write summary.json (whole store); sharded runs also keep one file per shard."""
        with self.run_lock():
            faults.point("summary-write")
            if shard[1] > 1:
                atomic_write_json(self.path / f"summary-shard-{shard[0]}-of-{shard[1]}.json", summary)
            atomic_write_json(self.summary_path, summary)
        return self.summary_path

    # ------------------------------------------------------------------ reading

    def writer_active(self, shard_file: Path) -> bool:
        """Whether another process holds the lock of `shard_file` (it is being written right now).
        Opens the lock file read-only, so a reader never creates or changes anything."""
        try:
            fd = os.open(self.lock_path(shard_file), os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def scan(self, keep: str | None = None, report: ReadReport | None = None,
             files: list[Path] | None = None) -> Iterator[tuple[int, int, int, dict[str, Any]]]:
        """Yield `(file_number, line, byte_offset, row)` for every sample row of the run's shards, each key
        once, without writing anything (see the module docstring for torn tails and duplicate keys)."""
        report = report if report is not None else ReadReport()
        files = self.shard_files() if files is None else files
        seen: dict[tuple[str, int], tuple[int, int, bytes]] = {}
        for number, path in enumerate(files):
            active = self.writer_active(path)
            for line, offset, row in scan_jsonl(path, torn_tail="skip" if active else "error"):
                key = (row.get("problem_id"), row.get("sample_index"))
                digest = _digest(row)
                if key in seen:
                    first_file, first_line, first_digest = seen[key]
                    where = f"{files[first_file]}:{first_line} and {path}:{line}"
                    if first_digest == digest:
                        report.identical_duplicates += 1
                        log.warning("sample %s/%s is stored twice, identically (%s); reading it once", *key, where)
                    elif keep == "first":
                        report.kept_first += 1
                        log.warning("sample %s/%s is stored twice with different content (%s); keeping the first "
                                    "(--keep first)", *key, where)
                    else:
                        raise DistillError(f"sample {key[0]}/{key[1]} is stored twice with different content: {where}; "
                                           "merge the shards of one run only, or pass --keep first")
                    continue
                seen[key] = (number, line, digest)  # type: ignore[index]
                yield number, line, offset, row

    def read_samples(self, keep: str | None = None, report: ReadReport | None = None) -> Iterator[Sample]:
        """Every sample of every shard, each key once (the rules of `scan`), as records."""
        files = self.shard_files()
        for number, line, _, row in self.scan(keep, report, files):
            yield from_dict(Sample, row, where=f"{files[number]}:{line}")

    # ------------------------------------------------------------------ writing

    def open_shard(self, shard: Shard, sides: tuple[str, ...] = ()) -> ShardWriter:
        """Take this shard's lock, repair its tail (torn bytes go to `torn/`) and open it for appending."""
        return ShardWriter(self, shard, sides)

    def write_verified(self, rows: Iterator[Any]) -> int:
        """Write RUN/verified.jsonl atomically from records or dicts; returns the number of rows."""
        count = 0
        with atomic_open(self.verified_path) as handle:
            for row in rows:
                handle.write(json.dumps(to_dict(row), ensure_ascii=False) + "\n")
                count += 1
        return count

    def keep_torn(self, source: Path, data: bytes) -> Path:
        """Save torn bytes cut from `source` under `torn/` (never deleted) and return where they went."""
        self.torn_dir.mkdir(parents=True, exist_ok=True)
        target = self.torn_dir / f"{source.name}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}.torn"
        with target.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(self.torn_dir)
        return target


class ShardWriter:
    """The one writer of one shard: holds its lock, appends sample lines (and side records first)."""

    def __init__(self, run: RunDir, shard: Shard, sides: tuple[str, ...] = ()) -> None:
        self.run = run
        self.shard = shard
        self.path = run.shard_path(shard)
        run.samples_dir.mkdir(parents=True, exist_ok=True)
        self._lock = self._take_lock()
        try:
            self._recover_tail()
            self.sides = {kind: run.side_path(shard, kind) for kind in sides}
            for kind, path in self.sides.items():
                self._recover_side(kind, path)
        except BaseException:
            self._lock.close()
            raise
        self._writer = JsonlWriter(self.path)
        self._side_handles: dict[str, IO[bytes]] = {kind: path.open("ab") for kind, path in self.sides.items()}

    def _take_lock(self) -> IO[str]:
        """One process per shard: a second one on the same shard would write keys twice."""
        handle = self.run.lock_path(self.path).open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            handle.close()
            raise DistillError(f"{self.path}: another process is writing this shard") from err
        return handle

    def _recover_tail(self) -> None:
        """Our own shard only, under its lock: a last line cut short moves to `torn/`; a last line that
        parses but lacks its newline gets one, so the next append starts a line of its own."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            chunk = min(size, 1 << 16)
            while True:
                handle.seek(size - chunk)
                tail = handle.read(chunk)
                body = tail[:-1] if tail.endswith(b"\n") else tail
                cut = body.rfind(b"\n")
                if cut >= 0 or chunk == size:
                    break
                chunk = min(size, chunk * 4)
            last = tail[cut + 1:]
            if last.endswith(b"\n"):
                return
            try:
                json.loads(last)
            except ValueError:
                saved = self.run.keep_torn(self.path, last)
                faults.point("tail-repair")
                handle.truncate(size - len(last))
                log.warning("%s: moved an incomplete last line (%d bytes, an interrupted write) to %s",
                            self.path, len(last), saved)
            else:
                handle.seek(0, os.SEEK_END)
                handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _recover_side(self, kind: str, path: Path) -> None:
        """Side bytes beyond the end that the shard's committed lines refer to move to `torn/`."""
        if not path.is_file():
            return
        committed = 0
        if self.path.is_file():
            for _, _, row in scan_jsonl(self.path):
                ref = (row.get("side") or {}).get(kind)
                if ref:
                    committed = max(committed, int(ref["offset"]) + int(ref["length"]))
        size = path.stat().st_size
        if size > committed:
            with path.open("rb+") as handle:
                handle.seek(committed)
                saved = self.run.keep_torn(path, handle.read())
                handle.truncate(committed)
                handle.flush()
                os.fsync(handle.fileno())
            log.warning("%s: moved %d bytes that no stored sample refers to (an interrupted write) to %s",
                        path, size - committed, saved)

    def write(self, sample: Sample | dict[str, Any], sides: dict[str, bytes] | None = None) -> None:
        """Append one sample: its side records first (flushed), then its line, which commits them."""
        row = to_dict(sample)
        refs: dict[str, dict[str, int]] = {}
        for kind, data in (sides or {}).items():
            handle = self._side_handles[kind]
            offset = handle.seek(0, os.SEEK_END)
            handle.write(data)
            handle.flush()
            # The file's name travels with the reference: verified.jsonl merges shards, and a corpus row points here.
            refs[kind] = {"file": self.sides[kind].name, "offset": offset, "length": len(data)}
        if refs:
            row["side"] = refs
            if isinstance(sample, Sample):
                sample.side = refs
        faults.point("append")
        self._writer.write_line(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self) -> None:
        """Close the files and release the shard lock."""
        self._writer.close()
        for handle in self._side_handles.values():
            handle.close()
        self._lock.close()


def run_problems(run: RunDir | None, override: str | None, source: str | Path) -> tuple[list[Problem], str]:
    """The problems of a run and how they were named: `override` (`--problems`), else the set the run's
    manifest records (a shipped name, a path, or the run's own problems.jsonl)."""
    if override is not None:
        return load_problems(override), override
    manifest = run.manifest() if run is not None and run.is_run() else {}
    recorded = (manifest.get("problems") or {}).get("source")
    if not recorded:
        raise DistillError(f"{source}: no problem set: no run manifest names one; pass --problems NAME|PATH")
    assert run is not None
    candidates = [str(recorded)]
    if not Path(recorded).is_absolute():
        candidates.append(str(run.path / recorded))
    candidates.append(str(run.path / "problems.jsonl"))
    for candidate in candidates:
        if candidate in SHIPPED or Path(candidate).exists():
            return load_problems(candidate), candidate
    raise DistillError(f"{run.manifest_path}: problem set {recorded!r} not found; pass --problems NAME|PATH")


def read_samples(run_dir: str | Path, keep: str | None = None) -> Iterator[Sample]:
    """Every sample of a run directory, each key once (see `RunDir.scan`)."""
    return RunDir(run_dir).read_samples(keep)


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The manifest of a run directory."""
    return RunDir(run_dir).manifest()
