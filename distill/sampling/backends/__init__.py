"""Teacher backends: one small protocol (requests in, completions streamed out) and three engines."""

from __future__ import annotations

from distill.sampling.backends.base import Backend, Completion, Request, TokenLogprobs, sample_seed

__all__ = ["Backend", "Completion", "Request", "TokenLogprobs", "sample_seed"]
