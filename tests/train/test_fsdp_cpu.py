"""FSDP2 sharding for real on CPU: two gloo ranks under torchrun, prepared by accelerate's own
`fsdp2_prepare_model` with students/accelerate/fsdp.yaml's wrap policy and mixed precision.

Tested: accelerate's `fsdp2_prepare_model` (TRANSFORMER_BASED_WRAP units, the embedding/tail carving,
`cpu_ram_efficient_loading`'s broadcast of rank 0's weights, the fp32 upcast under mixed precision),
`FullyShardedDataParallelPlugin.set_mixed_precision` and TRL's fused LM head on the sharded model.
Untested here (they need CUDA): `Accelerator.prepare`'s dispatch to FSDP (on CPU accelerate builds DDP
instead, which is why `distill train` refuses distributed: fsdp there), `accelerator.clip_grad_norm_` and
the optimizer on DTensors inside the Trainer, FSDP's sharded checkpoint saving and resuming and the full
state dict gathered for the final save, SFTTrainer's own FSDP paths, NCCL, DeepSpeed ZeRO-3 (the whole
plugin) and context parallelism (accelerate's ParallelismConfig, torch's context_parallel).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill.plan import KNOWN_SHAPES, Setup, TrainedModel, Workload
from distill.plan.memory import model_states
from distill.plan.precision import precision_path

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_fsdp2_on_cpu_shards_each_parameter_and_matches_ddp(tmp_path: Path) -> None:
    out = tmp_path / "fsdp.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "tests" / "train" / "fsdp_worker.py"), str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    world = result["world"]

    # Every parameter is split along its first dimension: rank r holds rows [r*c, (r+1)*c), c = ceil(rows/world).
    for name, shape in result["full_shapes"].items():
        rows, rest = shape[0], math.prod(shape[1:])
        chunk = math.ceil(rows / world)
        expected = [max(0, min(rows, (r + 1) * chunk) - r * chunk) * rest for r in range(world)]
        assert [result["local"][r][name][0] for r in range(world)] == expected, name
    held = [sum(n for n, _ in local.values()) for local in result["local"]]
    total = sum(math.prod(s) for s in result["full_shapes"].values())
    assert sum(held) == total and max(held) - min(held) <= total * 0.02  # each rank about 1/world of it
    assert "FSDPQwen2DecoderLayer" in result["wrapped"]  # TRANSFORMER_BASED_WRAP: one unit per decoder layer

    # Sharded training is exact: the same losses as DDP, step by step.
    for ddp, fsdp, fused in zip(result["ddp"], result["fsdp_fp32"], result["fsdp_fused"], strict=True):
        assert abs(fsdp - ddp) <= 1e-5 * abs(ddp)
        assert abs(fused - ddp) <= 1e-5 * abs(ddp)  # TRL's fused LM head on the sharded model
    # The config's mixed precision: fp32 master shards, bf16 parameters in the forward, and losses that
    # differ from fp32 DDP by bf16 rounding only.
    assert result["bf16_masters"] == ["torch.float32"] and result["bf16_compute"] == ["torch.bfloat16"]
    assert "param_dtype=torch.bfloat16" in result["policy"]
    for ddp, bf16 in zip(result["ddp"], result["fsdp_bf16"], strict=True):
        assert abs(bf16 - ddp) <= 2e-2 * abs(ddp)
    assert result["fsdp_bf16"] != result["ddp"]


def test_the_planner_shards_fsdp_model_states_as_fsdp2_does() -> None:
    # fp32 masters, gradients and AdamW moments (16 bytes a parameter) over the ranks, as the shards above.
    shape = KNOWN_SHAPES["Qwen/Qwen2.5-Math-1.5B"]
    w = Workload(TrainedModel(shape), seq_len=1024)
    setup = Setup(gpus_per_node=2, strategy="fsdp")
    weights, grads, optimizer = model_states(w, setup, precision_path(w, setup))
    assert weights == grads == optimizer / 2 == shape.total_params() * 4 / 2
