"""The hardware a plan is checked against: stated (recipe `hardware:` or flags), or detected (CUDA GPUs,
or on a machine without them the RAM that CPU training shares between its processes)."""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class Hardware:
    """GPUs per node, memory per GPU (GiB), nodes, and where the numbers came from."""

    gpus_per_node: int
    gpu_memory_gib: float
    nodes: int = 1
    device: str = "cuda"  # "cpu": CPU training, memory is the RAM each process may use
    source: str = "stated"

    @property
    def world(self) -> int:
        """All GPUs."""
        return self.gpus_per_node * self.nodes


def detect(processes: int = 1) -> Hardware:
    """The visible CUDA GPUs (count and the smallest one's memory), or the available RAM split over
    `processes` CPU training processes."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        count = torch.cuda.device_count()
        memory = min(torch.cuda.get_device_properties(i).total_memory for i in range(count)) / GIB
        return Hardware(count, memory, 1, "cuda", f"detected: {count} CUDA GPU(s)")
    import psutil

    available = psutil.virtual_memory().available / GIB
    return Hardware(max(processes, 1), available / max(processes, 1), 1, "cpu",
                    f"detected: no GPU, {available:.1f} GiB of RAM available")
