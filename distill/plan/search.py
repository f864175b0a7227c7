"""The verdict and the smallest setup that fits: `plan(workload, setup)` checks the setup a recipe asks for
and searches, over GPUs per node, nodes, DDP or FSDP, gradient checkpointing on or off and a fused or a
full-logits loss, for the setup with the fewest GPUs, then the fewest nodes, that fits."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from distill.plan.memory import GIB, Breakdown, estimate
from distill.plan.throughput import DEFAULT_MFU, PEAK_TFLOPS, Throughput, throughput
from distill.plan.workload import Setup, Workload

GPUS_PER_NODE = (1, 2, 4, 8)


@dataclass
class Plan:
    """A workload on a setup: its breakdown, whether it fits, the smallest setup that fits, the throughput."""

    workload: Workload
    setup: Setup
    breakdown: Breakdown
    smallest: tuple[Setup, Breakdown] | None
    throughput: Throughput

    @property
    def fits(self) -> bool:
        """Whether the peak is within the memory of one GPU of the setup."""
        return fits(self.breakdown, self.setup)

    def verdict(self) -> str:
        """One line: fits or not, and by how much."""
        need, have = self.breakdown.total / GIB, self.setup.gpu_memory_gib
        unit = "GPU" if self.setup.device == "cuda" else "process"
        if self.fits:
            return f"fits: {need:.2f} GiB of {have:.1f} GiB per {unit} at the peak ({self.breakdown.phase})"
        return (f"does not fit: {need:.1f} GiB needed per {unit} at the peak ({self.breakdown.phase}), "
                f"{have:.1f} GiB available")


def fits(breakdown: Breakdown, setup: Setup) -> bool:
    """The peak is at most the memory of one GPU (or one process's share of RAM)."""
    return breakdown.total <= setup.gpu_memory_gib * GIB


def candidates(base: Setup, max_gpus_per_node: int, max_nodes: int) -> list[Setup]:
    """Every setup the search tries, in the order it prefers them: fewest GPUs, then fewest nodes, then
    without checkpointing (faster), DDP before FSDP (simpler), the fused loss before full logits."""
    strategies = ("ddp", "fsdp") if base.device == "cuda" else ("ddp",)
    out = []
    per_node = [g for g in GPUS_PER_NODE if g <= max_gpus_per_node] or [max_gpus_per_node]
    for g, n, ckpt, strategy, fused in itertools.product(per_node, range(1, max_nodes + 1), (False, True),
                                                         strategies, (True, False)):
        if n > 1 and g != max(per_node):
            continue  # more nodes only once a node is full
        if (g * n) % base.cp_size or (base.cp_size > 1 and strategy != "fsdp"):
            continue
        out.append(base.replace(gpus_per_node=g, nodes=n, checkpointing=ckpt, strategy=strategy, fused_loss=fused))
    out.sort(key=lambda s: (s.world, s.nodes, s.checkpointing, s.strategy != "ddp", not s.fused_loss))
    return out


def smallest_setup(workload: Workload, base: Setup, max_gpus_per_node: int = 8,
                   max_nodes: int = 64) -> tuple[Setup, Breakdown] | None:
    """The first setup in `candidates` order that fits, with its breakdown; None when nothing up to
    max_nodes nodes fits."""
    for setup in candidates(base, max_gpus_per_node, max_nodes):
        breakdown = estimate(workload, setup)
        if fits(breakdown, setup):
            return setup, breakdown
    return None


def plan(workload: Workload, setup: Setup, mfu: float = DEFAULT_MFU, peak_tflops: float = PEAK_TFLOPS["H100"],
         epoch_tokens: float | None = None, max_gpus_per_node: int | None = None) -> Plan:
    """The plan of `workload` on `setup`: breakdown, verdict, smallest setup that fits, throughput."""
    breakdown = estimate(workload, setup)
    per_node = max_gpus_per_node or max(setup.gpus_per_node, 8 if setup.device == "cuda" else setup.gpus_per_node)
    smallest = smallest_setup(workload, setup, per_node)
    speed = throughput(workload, setup.world // setup.cp_size, mfu, peak_tflops, epoch_tokens)
    return Plan(workload, setup, breakdown, smallest, speed)
