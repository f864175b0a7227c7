"""One rank of the CPU sharding check, run by tests/train/test_fsdp_cpu.py under torchrun (gloo):

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/train/fsdp_worker.py OUT.json

Trains the same tiny model three ways on the same per-rank batches and writes, from rank 0, the per-step
global losses and each rank's shard sizes:
- ddp: torch DDP, fp32 (the reference);
- fsdp_fp32: accelerate's own `fsdp2_prepare_model` (the wrap policy, unit carving and loading of
  students/accelerate/fsdp.yaml) with its mixed precision switched off;
- fsdp_fused: the same with TRL's fused LM head computing the loss (SFTTrainer's loss);
- fsdp_bf16: the same with the config's mixed precision (bf16 parameters in compute, fp32 masters).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

REPO = Path(__file__).resolve().parents[2]
STEPS = 3


def model_and_batches(rank: int):
    from distill.toy.model import make_tiny_model
    from distill.toy.tokenizer import build_tokenizer

    torch.manual_seed(0)
    model, _ = make_tiny_model(build_tokenizer(), seed=0, hidden_size=32, num_heads=2, num_kv_heads=1)
    model.config.use_cache = False
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own data, as a distributed sampler gives
    vocab = model.config.vocab_size
    batches = [torch.randint(3, vocab, (2, 24), generator=g) for _ in range(STEPS)]
    return model, batches


def train(model: torch.nn.Module, batches: list[torch.Tensor], fused: bool = False) -> list[float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, foreach=False)
    losses = []
    for ids in batches:
        if fused:  # TRL's fused LM head, as SFTTrainer.compute_loss calls it
            loss = model(input_ids=ids, labels=ids, fused_lm_head=True).loss
        else:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        total = loss.detach().float().clone()
        dist.all_reduce(total)
        losses.append(total.item() / dist.get_world_size())
    return losses


def fsdp(model: torch.nn.Module, mixed_precision: bool):
    """accelerate's FSDP2 preparation with the recipe's accelerate config, on CPU."""
    import yaml
    from accelerate.utils.fsdp_utils import fsdp2_prepare_model

    from distill.train.launch import accelerate_plugin

    config = REPO / "students" / "accelerate" / "fsdp.yaml"
    plugin = accelerate_plugin(config)
    precision = yaml.safe_load(config.read_text())["mixed_precision"] if mixed_precision else "no"
    if precision != "no":
        plugin.set_mixed_precision(precision)  # what AcceleratorState does with the config's mixed_precision
    accelerator = SimpleNamespace(  # the attributes fsdp2_prepare_model reads from an Accelerator
        state=SimpleNamespace(fsdp_plugin=plugin), mixed_precision=precision,
        is_main_process=dist.get_rank() == 0, device=torch.device("cpu"), torch_device_mesh=None,
    )
    return fsdp2_prepare_model(accelerator, model), plugin


def main() -> None:
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    out: dict = {"world": world}

    model, batches = model_and_batches(rank)
    full = {n: tuple(p.shape) for n, p in model.named_parameters()}
    out["ddp"] = train(torch.nn.parallel.DistributedDataParallel(model), batches)

    model, batches = model_and_batches(rank)
    sharded, plugin = fsdp(model, mixed_precision=False)
    local = {n: (p.to_local().numel(), str(p.to_local().dtype)) for n, p in sharded.named_parameters()}
    out["fsdp_fp32"] = train(sharded, batches)

    from trl.trainer.utils import add_fused_lm_head

    model, batches = model_and_batches(rank)
    add_fused_lm_head(model)  # before sharding, as SFTTrainer adds it before accelerate prepares the model
    sharded, _ = fsdp(model, mixed_precision=False)
    out["fsdp_fused"] = train(sharded, batches, fused=True)

    model, batches = model_and_batches(rank)
    sharded, plugin = fsdp(model, mixed_precision=True)
    seen: list[str] = []
    layer = sharded.model.layers[0]
    layer.register_forward_pre_hook(lambda m, a: seen.append(str(m.mlp.gate_proj.weight.dtype)))
    masters = {str(p.to_local().dtype) for p in sharded.parameters()}
    out["fsdp_bf16"] = train(sharded, batches)
    out["bf16_compute"] = sorted(set(seen))
    out["bf16_masters"] = sorted(masters)
    out["policy"] = str(plugin.mixed_precision_policy)
    out["wrapped"] = sorted({type(m).__name__ for m in sharded.modules() if type(m).__name__.startswith("FSDP")})

    gathered: list = [None] * world
    dist.all_gather_object(gathered, local)
    if rank == 0:
        out["full_shapes"] = full
        out["local"] = gathered
        Path(sys.argv[1]).write_text(json.dumps(out), encoding="utf-8")
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
