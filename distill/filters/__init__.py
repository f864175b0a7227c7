"""Filtering and selection: verified samples in, a training corpus out, with a reason for every drop.

    funnel = filter_run("runs/r1", "runs/r1/corpus", config=load_filter_config("recipes/filters.yaml"))

Per-sample filters are plain functions `(sample, problem) -> None | reason` built by the factories in
`CHECKS` (each takes its config group); duplicates and selection work per problem in a second pass.
`language_share(text, language)` is also the RL stage's language-consistency reward.
"""

from __future__ import annotations

from distill.filters.checks import CHECKS, Filter
from distill.filters.config import FilterConfig, load_filter_config
from distill.filters.decontam import Decontaminate, NgramIndex, build_index
from distill.filters.dedup import ExactDedup, NearDedup
from distill.filters.run import FILTER_NAMES, Funnel, filter_run
from distill.filters.select import POLICIES, select

__all__ = [
    "CHECKS", "FILTER_NAMES", "POLICIES", "Decontaminate", "ExactDedup", "Filter", "FilterConfig", "Funnel",
    "NearDedup", "NgramIndex", "build_index",
    "filter_run", "load_filter_config", "select",
]
