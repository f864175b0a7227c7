"""Evaluation with DeepSeek-R1's protocol: pass@1 over k samples, the unbiased pass@k, cons@k by
majority vote over equivalent answers, a comparison table and plots (see `run.evaluate`)."""

from __future__ import annotations

from distill.evaluate.benches import load_bench
from distill.evaluate.compare import compare
from distill.evaluate.metrics import majority_vote, pass_at_k
from distill.evaluate.run import evaluate

__all__ = ["compare", "evaluate", "load_bench", "majority_vote", "pass_at_k"]
