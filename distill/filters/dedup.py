"""Exact and near-duplicate traces: stateful filters, still called one sample at a time.

Exact duplicates are found by a 64-bit hash of the normalised text (lower-cased, whitespace
folded). Near duplicates use datasketch's MinHash over word shingles and MinHashLSH to find
candidates above a Jaccard threshold. Within a problem (the default) the state is dropped after
each problem (`reset()`), so memory stays bounded by the largest problem; across problems the
state grows with the corpus (about 1 KB per kept sample at 128 permutations).
"""

from __future__ import annotations

import hashlib
import zlib
from typing import TYPE_CHECKING

from distill.text import normalise

if TYPE_CHECKING:
    from datasketch import MinHash, MinHashLSH


def text_hash(text: str) -> int:
    """A 64-bit hash of the normalised text, stable across processes (unlike `hash`).

    >>> text_hash("Same  TEXT") == text_hash("same text")
    True
    """
    return int.from_bytes(hashlib.blake2b(normalise(text).encode("utf-8"), digest_size=8).digest(), "little")


def shingles(text: str, size: int) -> set[str]:
    """The set of word `size`-grams of the normalised text (the whole text when shorter).

    >>> sorted(shingles("a b c d", 3))
    ['a b c', 'b c d']
    """
    tokens = normalise(text).split()
    if len(tokens) <= size:
        return {" ".join(tokens)}
    return {" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


class ExactDedup:
    """Drops a text seen before (within the current scope).

    >>> d = ExactDedup()
    >>> d("k1", "The answer is 4."), d("k2", "the  answer is 4."), d("k3", "Another.")
    (None, 'same text as k1', None)
    """

    def __init__(self) -> None:
        self.seen: dict[int, str] = {}

    def __call__(self, key: str, text: str) -> str | None:
        digest = text_hash(text)
        first = self.seen.get(digest)
        if first is not None:
            return f"same text as {first}"
        self.seen[digest] = key
        return None

    def reset(self) -> None:
        """Forget everything (called between problems when the scope is one problem)."""
        self.seen.clear()


class NearDedup:
    """Drops a text whose MinHash Jaccard estimate with a kept text is at least `threshold`.

    >>> d = NearDedup(num_perm=128, threshold=0.8, shingle=3)
    >>> base = "first we add the two numbers and then we divide the sum by three to get the mean value"
    >>> d("k1", base) is None
    True
    >>> d("k2", base + " here").startswith("near duplicate of k1")
    True
    >>> d("k3", "a completely different chain of thought about prime numbers and their squares") is None
    True
    """

    def __init__(self, num_perm: int = 128, threshold: float = 0.9, shingle: int = 5, scan_limit: int = 64) -> None:
        from datasketch import (  # datasketch imports scipy: load it only when deduplicating
            MinHash,
            MinHashLSH,
        )

        self._minhash, self._lsh_class = MinHash, MinHashLSH
        self.num_perm = num_perm
        self.scan_limit = scan_limit
        # Drawing the permutations is most of the cost of a new MinHash: draw them once.
        template = MinHash(num_perm=num_perm, seed=1)
        self._permutations, self._scheme = template.permutations, template.scheme
        self.threshold = threshold
        self.shingle = shingle
        self.reset()

    def signature(self, text: str) -> MinHash:
        """The MinHash of the text's word shingles (CRC-32 hashed, permutations drawn once per instance)."""
        minhash = self._minhash(num_perm=self.num_perm, seed=1, hashfunc=zlib.crc32, permutations=self._permutations,
                                scheme=self._scheme)
        minhash.update_batch([s.encode("utf-8") for s in shingles(text, self.shingle)])
        return minhash

    def __call__(self, key: str, text: str) -> str | None:
        minhash = self.signature(text)
        # A few kept texts (one problem's samples) are compared one by one: exact MinHash estimates, none of
        # the misses LSH banding has just above the threshold; many (global scope) go through the LSH index.
        candidates = self.kept if self.lsh is None else self.lsh.query(minhash)
        for other in candidates:
            estimate = minhash.jaccard(self.kept[other])
            if estimate >= self.threshold:
                return f"near duplicate of {other} (Jaccard ~{estimate:.2f} >= {self.threshold:g})"
        self.kept[key] = minhash
        if self.lsh is not None:
            self.lsh.insert(key, minhash)
        elif len(self.kept) > self.scan_limit:
            self.lsh = self._new_lsh()
            for name, kept in self.kept.items():
                self.lsh.insert(name, kept)
        return None

    def _new_lsh(self) -> MinHashLSH:
        # datasketch picks the band layout by numerical integration (~0.3 s): do it once per setting.
        params = _LSH_PARAMS.get((self.threshold, self.num_perm))
        lsh = self._lsh_class(threshold=self.threshold, num_perm=self.num_perm, params=params)
        _LSH_PARAMS[(self.threshold, self.num_perm)] = (lsh.b, lsh.r)
        return lsh

    def reset(self) -> None:
        """Forget everything (called between problems when the scope is one problem)."""
        self.lsh: MinHashLSH | None = None
        self.kept: dict[str, MinHash] = {}


_LSH_PARAMS: dict[tuple[float, int], tuple[int, int]] = {}
