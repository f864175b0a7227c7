"""JSONL and Parquet input/output with errors that name the file and line.

Writers append and flush each record as it is written, so a crash loses at most the line being
written; `repair_torn_tail` removes such a torn last line before a run resumes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from distill.records import RecordError, to_dict

log = logging.getLogger(__name__)


def read_jsonl(path: str | Path, skip_invalid: bool = False, rejects: list[str] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, object)` for each non-blank line of a JSONL file.

    A line that is not UTF-8, not JSON or not an object raises `RecordError("file:line: ...")`,
    unless `skip_invalid` is set, in which case its message is appended to `rejects`.
    """
    path = Path(path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
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
                yield number, obj
                continue
            if not skip_invalid:
                raise RecordError(message)
            if rejects is not None:
                rejects.append(message)


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Write records (dataclasses or dicts) to a new JSONL file; returns how many were written."""
    count = 0
    with JsonlWriter(path, mode="w") as writer:
        for record in records:
            writer.write(record)
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
        line = json.dumps(to_dict(record), ensure_ascii=False)
        self._handle.write(line + "\n")
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


def repair_torn_tail(path: str | Path) -> int:
    """Cut a torn last line (one without its newline, or not valid JSON) left by a crash.

    Returns the number of bytes removed (0 when the file was whole).
    """
    path = Path(path)
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as handle:
        # Read back far enough to find the start of the last line.
        chunk = min(size, 1 << 20)
        while True:
            handle.seek(size - chunk)
            tail = handle.read(chunk)
            body = tail[:-1] if tail.endswith(b"\n") else tail
            cut = body.rfind(b"\n")
            if cut >= 0 or chunk == size:
                break
            chunk = min(size, chunk * 4)
        start = size - chunk + cut + 1
        last = tail[cut + 1 :]
        whole = last.endswith(b"\n")
        if whole:
            try:
                json.loads(last)
                return 0
            except ValueError:
                pass
        handle.truncate(start)
    removed = size - start
    log.warning("%s: removed a torn last line (%d bytes) left by an interrupted write", path, removed)
    return removed


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
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return len(rows)
