"""Memory and throughput planning for training: `estimate(workload, setup)` gives the per-GPU peak broken
down by kind, `plan(workload, hardware)` adds the verdict, the smallest setup that fits and tokens/s.
"""

from __future__ import annotations

from distill.plan.memory import GIB, Breakdown, estimate
from distill.plan.shapes import KNOWN_SHAPES, ModelShape, load_shape, shape_from_config
from distill.plan.workload import FrozenModel, Setup, TrainedModel, Workload

__all__ = ["GIB", "KNOWN_SHAPES", "Breakdown", "FrozenModel", "ModelShape", "Setup", "TrainedModel", "Workload",
           "estimate", "load_shape", "shape_from_config"]
