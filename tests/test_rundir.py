"""The run directory's integrity rules: readers never write, a writer repairs only its own shard (keeping the
torn bytes), shard counts are declared, merged shards report duplicate keys, side records follow the commit
rule, and replacing a file is atomic even when the disk is full."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
from pathlib import Path

import pytest

from distill import atomic
from distill.errors import ConfigError, DistillError
from distill.records import Sample
from distill.rundir import RunDir, read_samples

MANIFEST = {"teacher_identity": {"model": "m"}, "sampling_identity": {"seed": 0}, "problems_fingerprint": "f"}


def sample(pid: str, index: int, text: str = "r") -> Sample:
    return Sample(pid, index, text, "c", finish_reason="stop")


def write_shard(run: RunDir, shard: tuple[int, int], samples: list[Sample], sides: dict | None = None) -> None:
    writer = run.open_shard(shard, tuple(sides or ()))
    try:
        for s in samples:
            writer.write(s, {k: v(s) for k, v in (sides or {}).items()} or None)
    finally:
        writer.close()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_incomplete_last_line_of_an_unlocked_shard_is_an_error_naming_file_and_line(tmp_path):
    run = RunDir(tmp_path / "run")
    write_shard(run, (0, 1), [sample("a", 0), sample("b", 0)])
    path = run.shard_path((0, 1))
    with path.open("ab") as handle:
        handle.write(b'{"problem_id": "c", "sam')
    before = snapshot(run.path)
    with pytest.raises(DistillError, match=r"shard-0-of-1.jsonl:3: invalid JSON"):
        list(read_samples(run.path))
    assert snapshot(run.path) == before  # reading changed nothing


def test_a_shard_being_written_is_read_up_to_its_incomplete_line(tmp_path, caplog):
    run = RunDir(tmp_path / "run")
    write_shard(run, (0, 1), [sample("a", 0), sample("b", 0)])
    path = run.shard_path((0, 1))
    with path.open("ab") as handle:
        handle.write(b'{"problem_id": "c", "sam')
    lock = run.lock_path(path).open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)  # another process is writing this shard
    try:
        before = snapshot(run.path)
        with caplog.at_level(logging.WARNING):
            keys = [s.key for s in read_samples(run.path)]
        assert keys == [("a", 0), ("b", 0)] and "another process is writing" in caplog.text
        assert snapshot(run.path) == before
    finally:
        lock.close()


def test_a_writer_repairs_only_its_own_shard_and_keeps_the_torn_bytes(tmp_path):
    run = RunDir(tmp_path / "run")
    run.start(MANIFEST, shards=2)
    write_shard(run, (0, 2), [sample("a", 0)])
    write_shard(run, (1, 2), [sample("b", 0)])
    other = run.shard_path((1, 2))
    with other.open("ab") as handle:
        handle.write(b'{"problem_id": "b", "sample_index": 1, "rea')  # host 1 is mid-write
    lock = run.lock_path(other).open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        before = other.read_bytes()
        mine = run.shard_path((0, 2))
        with mine.open("ab") as handle:
            handle.write(b'{"problem_id": "a", "sample_ind')  # our own crash
        writer = run.open_shard((0, 2))
        writer.close()
        assert other.read_bytes() == before  # never touched: its writer holds the lock
        assert mine.read_bytes().endswith(b"\n") and mine.read_bytes().count(b"\n") == 1
        (torn,) = run.torn_dir.iterdir()
        assert torn.read_bytes() == b'{"problem_id": "a", "sample_ind'
    finally:
        lock.close()


def test_a_last_line_without_newline_that_parses_is_kept_and_closed_by_its_writer(tmp_path):
    run = RunDir(tmp_path / "run")
    write_shard(run, (0, 1), [sample("a", 0)])
    path = run.shard_path((0, 1))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert [s.key for s in read_samples(run.path)] == [("a", 0)]
    write_shard(run, (0, 1), [sample("b", 0)])
    assert [s.key for s in read_samples(run.path)] == [("a", 0), ("b", 0)]
    assert not run.torn_dir.exists()


def test_another_shard_count_is_refused(tmp_path):
    run = RunDir(tmp_path / "run")
    run.start(MANIFEST, shards=4)
    with pytest.raises(ConfigError, match="split into 4 shards.*--shard I/4"):
        run.start(MANIFEST, shards=2)
    assert json.loads(run.manifest_path.read_text())["shards"] == 4


def test_merged_shards_report_duplicate_keys_with_both_places(tmp_path, caplog):
    run = RunDir(tmp_path / "run")
    write_shard(run, (0, 2), [sample("a", 0), sample("b", 0)])
    write_shard(run, (1, 2), [sample("c", 0), sample("a", 0)])  # an identical copy of a/0
    with caplog.at_level(logging.WARNING):
        assert sorted(s.key for s in read_samples(run.path)) == [("a", 0), ("b", 0), ("c", 0)]
    assert "shard-0-of-2.jsonl:1 and" in caplog.text and "shard-1-of-2.jsonl:2" in caplog.text
    write_shard(run, (1, 2), [sample("b", 0, text="another trace")])  # a different b/0
    with pytest.raises(DistillError, match=r"b/0 is stored twice with different content: .*shard-0-of-2.jsonl:2 "
                                           r"and .*shard-1-of-2.jsonl:3.*--keep first"):
        list(read_samples(run.path))
    kept = {s.key: s for s in read_samples(run.path, keep="first")}
    assert kept[("b", 0)].reasoning == "r"


def test_side_records_are_committed_by_their_sample_line(tmp_path):
    run = RunDir(tmp_path / "run")
    side = {"logprobs": lambda s: s.problem_id.encode() * 10}
    write_shard(run, (0, 1), [sample("a", 0), sample("b", 0)], side)
    rows = [json.loads(line) for line in run.shard_path((0, 1)).read_text().splitlines()]
    name = "shard-0-of-1.logprobs"
    assert [r["side"]["logprobs"] for r in rows] == [{"file": name, "offset": 0, "length": 10},
                                                     {"file": name, "offset": 10, "length": 10}]
    side_file = run.side_path((0, 1), "logprobs")
    with side_file.open("ab") as handle:
        handle.write(b"c" * 7)  # a side record whose sample line never came: a crash between the two
    write_shard(run, (0, 1), [sample("d", 0)], side)
    assert side_file.read_bytes() == b"a" * 10 + b"b" * 10 + b"d" * 10
    (torn,) = run.torn_dir.iterdir()
    assert torn.read_bytes() == b"c" * 7


def test_a_full_disk_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    atomic.atomic_write_json(target, {"old": True})

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left"):
        atomic.atomic_write_json(target, {"new": True})
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
