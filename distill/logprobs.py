"""The teacher's per-token distribution, stored for token-level distillation: a compact binary sidecar.

Each sample's record sits in its shard's side file `samples/shard-I-of-N.logprobs`; the sample line
holds `side.logprobs = {offset, length}` and is the commit (the record is flushed first). A record is:

    header   16 bytes  b"DLP1", tokens T (uint32), K (uint16), reserved (uint16), prompt tokens P (uint32),
                       little-endian (`HEADER`)
    prompt   int32[P]  the prompt's token ids as the teacher saw them
    ids      int32[T]  the generated token ids (int32: Qwen's vocabulary exceeds 65,535)
    sampled  float16[T] the sampled token's logprob
    top_ids  int32[T*K] the K most likely ids at each step, best first
    top_lp   float16[T*K] their logprobs

Why this format: fixed-width little-endian arrays read back with `numpy.frombuffer` straight from a
memory map (training never loads a corpus's logprobs into memory), 4 + 2 + 6K bytes per token (126 at
K = 20: about 126 KB per 1,000 tokens), and no dependency beyond numpy. The logprobs are those of the
raw distribution (temperature 1, before top-p and top-k); float16 keeps about 3 significant digits,
ample for KL terms.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distill.errors import DistillError

MAGIC = b"DLP1"
HEADER = struct.Struct("<4sIHHI")  # magic, tokens, K, reserved, prompt tokens


@dataclass
class LogprobRecord:
    """One sample's stored distribution (arrays view the file's memory when read from a map)."""

    prompt_ids: Any  # int32 [P]
    token_ids: Any  # int32 [T]
    sampled: Any  # float16 [T]
    top_ids: Any  # int32 [T, K]
    top_logprobs: Any  # float16 [T, K]


def encode(token_ids: Any, sampled: Any, top_ids: Any, top_logprobs: Any, prompt_ids: Any = ()) -> bytes:
    """One record's bytes.

    >>> rec = decode(encode([5, 6], [-0.1, -0.2], [[5, 1], [6, 2]], [[-0.1, -3.0], [-0.2, -2.5]], [9]), 0)
    >>> rec.token_ids.tolist(), rec.top_ids.tolist(), rec.prompt_ids.tolist(), float(rec.top_logprobs[1, 1])
    ([5, 6], [[5, 1], [6, 2]], [9], -2.5)
    """
    ids = np.asarray(token_ids, dtype="<i4")
    top = np.asarray(top_ids, dtype="<i4")
    count = ids.shape[0]
    k = top.shape[1] if top.ndim == 2 else 0
    if top.shape != (count, k) or np.asarray(top_logprobs).shape != (count, k) or np.asarray(sampled).shape != (count,):
        raise DistillError(f"logprobs: inconsistent shapes (tokens {count}, top ids {top.shape})")
    prompt = np.asarray(prompt_ids, dtype="<i4")
    return b"".join([
        HEADER.pack(MAGIC, count, k, 0, prompt.shape[0]), prompt.tobytes(), ids.tobytes(),
        np.asarray(sampled, dtype="<f2").tobytes(), top.tobytes(), np.asarray(top_logprobs, dtype="<f2").tobytes(),
    ])


def decode(buffer: Any, offset: int) -> LogprobRecord:
    """The record at `offset` of a buffer (bytes or a memory map); arrays share the buffer's memory."""
    magic, count, k, _, prompt = HEADER.unpack_from(buffer, offset)
    if magic != MAGIC:
        raise DistillError(f"logprobs: no record at byte {offset} (bad magic {magic!r})")
    at = offset + HEADER.size

    def take(dtype: str, n: int) -> Any:
        nonlocal at
        array = np.frombuffer(buffer, dtype=dtype, count=n, offset=at)
        at += array.nbytes
        return array

    prompt_ids = take("<i4", prompt)
    ids = take("<i4", count)
    sampled = take("<f2", count)
    top_ids = take("<i4", count * k).reshape(count, k)
    top_lp = take("<f2", count * k).reshape(count, k)
    return LogprobRecord(prompt_ids, ids, sampled, top_ids, top_lp)


class SidecarReader:
    """Reads records of one side file through a read-only memory map (nothing is loaded up front)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle = self.path.open("rb")
        size = self.path.stat().st_size
        self._map = mmap.mmap(self._handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""

    def read(self, offset: int, length: int) -> LogprobRecord:
        """The record a sample line's `side.logprobs` points at."""
        if offset + length > len(self._map):
            raise DistillError(f"{self.path}: record at {offset}+{length} is beyond the end of the file")
        return decode(self._map, offset)

    def close(self) -> None:
        """Release the map and the file."""
        if isinstance(self._map, mmap.mmap):
            self._map.close()
        self._handle.close()
