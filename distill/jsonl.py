"""JSONL and Parquet input/output with errors that name the file and line.

Readers never modify their input. Whole files are written atomically (`distill.atomic`); the run
store appends with `JsonlWriter`, which flushes every line, so a crash loses at most the line being
written (the run directory, `distill.rundir`, then keeps those torn bytes aside when it resumes).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from distill import faults
from distill.atomic import atomic_open
from distill.records import RecordError, to_dict

log = logging.getLogger(__name__)


def scan_jsonl(path: str | Path, *, torn_tail: str = "error", skip_invalid: bool = False,
               rejects: list[str] | None = None) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Yield `(line_number, byte_offset, object)` for each non-blank line of a JSONL file, never writing to it.

    A last line without its newline is a record when it parses. When it does not (a torn write),
    `torn_tail="error"` raises `RecordError("file:line: ...")`, and `torn_tail="skip"` (for a file another
    process is appending to right now) logs a warning and stops. Any other line that is not UTF-8, not JSON
    or not an object raises, unless `skip_invalid` is set, in which case its message goes to `rejects`.
    """
    path = Path(path)
    offset = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
                obj = json.loads(text)
                if not isinstance(obj, dict):
                    raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            except UnicodeDecodeError as err:
                message = f"{path}:{number}: not UTF-8 (byte {raw[err.start]:#04x} at column {err.start + 1})"
            except json.JSONDecodeError as err:
                message = f"{path}:{number}: invalid JSON: {err.msg} at column {err.colno if err.lineno == 1 else len(raw)}"
            except ValueError as err:
                message = f"{path}:{number}: {err}"
            else:
                yield number, start, obj
                continue
            if not raw.endswith(b"\n"):  # the last line, cut short
                if torn_tail == "skip":
                    log.warning("%s:%d: skipping an incomplete last line (%d bytes): another process is writing "
                                "this file", path, number, len(raw))
                    return
                message += " (the file ends in the middle of a record: an interrupted write?)"
            if not skip_invalid:
                raise RecordError(message)
            if rejects is not None:
                rejects.append(message)


def read_jsonl(path: str | Path, skip_invalid: bool = False, rejects: list[str] | None = None,
               torn_tail: str = "error") -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, object)` for each non-blank line of a JSONL file; the file is never modified.

    Errors and the last-line rule are those of `scan_jsonl`.
    """
    for number, _, obj in scan_jsonl(path, torn_tail=torn_tail, skip_invalid=skip_invalid, rejects=rejects):
        yield number, obj


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Write records (dataclasses or dicts) as a JSONL file that replaces `path` atomically when every
    record is written (an error part-way leaves the old file); returns how many were written."""
    count = 0
    with atomic_open(path) as handle:
        for record in records:
            handle.write(json.dumps(to_dict(record), ensure_ascii=False) + "\n")
            count += 1
    return count


class JsonlWriter:
    """An append-only JSONL writer that flushes every line (and can fsync) so crashes lose nothing written."""

    def __init__(self, path: str | Path, mode: str = "a", fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._handle: IO[str] = self.path.open(mode, encoding="utf-8")

    def write(self, record: Any) -> None:
        """Append one record as a single line and flush it to the OS."""
        self.write_line(json.dumps(to_dict(record), ensure_ascii=False) + "\n")

    def write_line(self, line: str) -> None:
        """Append one ready line (ending in a newline) and flush it."""
        if faults.armed("mid-append"):  # a test kills the process with half the line written
            half = len(line) // 2
            self._handle.write(line[:half])
            self._handle.flush()
            faults.point("mid-append")
            line = line[half:]
        self._handle.write(line)
        self._handle.flush()
        if self.fsync:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Columns Arrow cannot hold natively: free-form dicts, or a mix of strings and lists."""
    columns: list[str] = []
    for name in dict.fromkeys(k for row in rows for k in row):
        kinds = {type(row.get(name)) for row in rows if row.get(name) is not None}
        if dict in kinds or len(kinds - {int, float}) > 1:
            columns.append(name)
    return columns


def read_parquet(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(row_number, row)` from a Parquet file, row numbers starting at 1."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    metadata = table.schema.metadata or {}
    json_columns = json.loads(metadata.get(b"distill.json_columns", b"[]"))
    for number, row in enumerate(table.to_pylist(), start=1):
        for name in json_columns:
            if row.get(name) is not None:
                row[name] = json.loads(row[name])
        yield number, row


def write_parquet(path: str | Path, records: Iterable[Any]) -> int:
    """Write records to a Parquet file that `read_parquet` turns back into the same dicts.

    Columns Arrow cannot type (free-form dicts, strings mixed with lists) are stored as JSON text
    and named in the file's metadata; everything else stays a native Arrow column.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [to_dict(r) for r in records]
    json_columns = _json_columns(rows)
    encoded = [
        {k: (json.dumps(v, ensure_ascii=False) if k in json_columns and v is not None else v) for k, v in row.items()}
        for row in rows
    ]
    table = pa.Table.from_pylist(encoded)
    table = table.replace_schema_metadata({"distill.json_columns": json.dumps(json_columns)})
    with atomic_open(path, "wb", encoding=None) as handle:
        pq.write_table(table, handle)
    return len(rows)
