"""Selection after filtering: keep at most K samples per problem by a policy.

Policies work on one problem's surviving samples at a time: `random` (seeded per problem, so the
choice does not depend on the order problems arrive in), `shortest`, and `diverse` (greedy
farthest-point selection under word-shingle Jaccard distance, starting from the shortest).
"""

from __future__ import annotations

import random

from distill.filters.dedup import shingles
from distill.records import Sample

POLICIES = ("random", "shortest", "diverse")


def sample_length(sample: Sample) -> int:
    """The length a policy compares: completion tokens when known, else words of reasoning and answer."""
    if sample.completion_tokens is not None:
        return sample.completion_tokens
    return len(sample.reasoning.split()) + len(sample.content.split())


def jaccard(a: set[str], b: set[str]) -> float:
    """Jaccard similarity of two sets (1.0 for two empty sets).

    >>> jaccard({"a", "b"}, {"b", "c"})
    0.3333333333333333
    """
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def select(samples: list[Sample], k: int | None, policy: str = "random", seed: int = 0) -> list[int]:
    """Indices (in input order) of at most `k` samples of one problem chosen by `policy`.

    >>> s = [Sample("p", i, "x " * n, "2") for i, n in enumerate([5, 1, 3])]
    >>> select(s, 2, "shortest")
    [1, 2]
    >>> select(s, None, "random")
    [0, 1, 2]
    >>> d = [Sample("p", 0, "add one and two to get three", "3"), Sample("p", 1, "add one and two to get three", "3"),
    ...      Sample("p", 2, "three is the sum of the numbers one and two", "3")]
    >>> select(d, 2, "diverse", seed=0)
    [0, 2]
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown selection policy {policy!r} (known: {', '.join(POLICIES)})")
    if k is None or len(samples) <= k:
        return list(range(len(samples)))
    if policy == "shortest":
        order = sorted(range(len(samples)), key=lambda i: (sample_length(samples[i]), i))
        return sorted(order[:k])
    if policy == "random":
        rng = random.Random(f"{seed}:{samples[0].problem_id}")
        return sorted(rng.sample(range(len(samples)), k))
    sets = [shingles(s.reasoning + " " + s.content, 3) for s in samples]
    first = min(range(len(samples)), key=lambda i: (sample_length(samples[i]), i))
    chosen = [first]
    nearest = [1.0 - jaccard(sets[i], sets[first]) for i in range(len(samples))]
    while len(chosen) < k:
        best = max((i for i in range(len(samples)) if i not in chosen), key=lambda i: (nearest[i], -i))
        chosen.append(best)
        for i in range(len(samples)):
            nearest[i] = min(nearest[i], 1.0 - jaccard(sets[i], sets[best]))
    return sorted(chosen)
