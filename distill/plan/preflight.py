"""`distill train`'s preflight: plan the recipe on the hardware it will run on and refuse, in one line,
a recipe that will not fit (`--force` overrides). The hardware is the recipe's `hardware:` when stated,
else the GPUs that are visible; without GPUs, the RAM each CPU training process may use (the tiny recipes
are never refused there)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from distill.errors import ConfigError
from distill.plan.hardware import Hardware, detect
from distill.plan.memory import GIB
from distill.plan.recipes import grpo_workload, recipe_setup, student_workload, trl_fuses_sft_loss
from distill.plan.report import describe
from distill.plan.search import Plan, plan
from distill.plan.shapes import load_shape
from distill.plan.workload import Setup

if TYPE_CHECKING:  # the planner reads recipes; it never imports the trainers that call it
    from distill.reinforce.recipe import GRPORecipe
    from distill.train.recipe import StudentRecipe

log = logging.getLogger(__name__)
ASSUMED_GPU_MEMORY_GIB = 80.0


def hardware_for(recipe: StudentRecipe, gpus: int | None = None, gpu_memory_gib: float | None = None,
                 nodes: int | None = None) -> Hardware:
    """Flags first, then the recipe's `hardware:`, then what is detected; a GPU count given without a memory
    size (and none stated or visible) assumes 80 GiB GPUs and says so."""
    stated = recipe.hardware
    if gpus is None and gpu_memory_gib is None and nodes is None and not stated.stated():
        found = detect(recipe.num_processes or 1)
        if found.device == "cuda" or recipe.model == "tiny":
            return found
    sources = []
    if stated.stated():
        sources.append(f"{recipe.path}: hardware")
    per_node = gpus or stated.gpus_per_node or recipe.num_processes or 1
    memory = gpu_memory_gib or stated.gpu_memory_gib
    if memory is None:
        found = detect()
        memory = found.gpu_memory_gib if found.device == "cuda" else ASSUMED_GPU_MEMORY_GIB
        sources.append("GPU memory detected" if found.device == "cuda" else f"assumed {ASSUMED_GPU_MEMORY_GIB:.0f} GiB GPUs")
    if gpus or gpu_memory_gib or nodes:
        sources.append("flags")
    return Hardware(per_node, float(memory), nodes or stated.nodes, "cuda", ", ".join(sources))


def plan_recipe(recipe: StudentRecipe, hardware: Hardware, seq_len: int | None = None, **kwargs: object) -> Plan:
    """The plan of a student recipe on `hardware`."""
    workload = student_workload(recipe, seq_len)
    setup = recipe_setup(recipe, hardware.gpus_per_node, hardware.nodes, hardware.gpu_memory_gib, hardware.device)
    return plan(workload, setup, **kwargs)  # type: ignore[arg-type]


def preflight(recipe: StudentRecipe, processes: int, machines: int = 1, force: bool = False) -> Plan | None:
    """Plan the run about to start (`processes` in all over `machines`) and raise ConfigError if it will not
    fit; with `force`, log the same line as a warning and go on. Returns the plan (None when the model's
    shape is unknown offline: then nothing is checked, and the log says so)."""
    stated = recipe.hardware
    if stated.stated():
        hardware = Hardware(max(processes // machines, 1), float(stated.gpu_memory_gib or 0), machines, "cuda",
                            f"{recipe.path}: hardware.gpu_memory_gib")
    else:
        found = detect(processes // machines)
        hardware = Hardware(max(processes // machines, 1), found.gpu_memory_gib, machines, found.device, found.source)
    try:
        result = plan_recipe(recipe, hardware)
    except ConfigError as err:
        log.warning("preflight skipped, the memory plan needs the model's shape: %s", err)
        return None
    log.info("preflight: %s on %s", result.verdict(), describe(result.setup))
    if result.fits or (hardware.device == "cpu" and recipe.model == "tiny"):
        return result
    hint = (f"the smallest setup that fits: {describe(result.smallest[0])}" if result.smallest
            else "nothing up to 64 nodes fits")
    message = (f"{recipe.path}: the memory plan says this run will not fit: {result.breakdown.total / GIB:.1f} GiB per "
               f"{'GPU' if hardware.device == 'cuda' else 'process'} at its peak ({result.breakdown.phase}), "
               f"{hardware.gpu_memory_gib:.1f} GiB available ({hardware.source}); {hint}; "
               "`distill plan --student ...` shows the breakdown, `--force` trains anyway")
    if force:
        log.warning("--force: %s", message)
        return result
    raise ConfigError(message)


def plan_grpo(recipe: GRPORecipe, model: str, hardware: Hardware | None = None) -> Plan | None:
    """The plan of a GRPO run (`distill reinforce`): the policy, its reference model when beta > 0, and the
    rollout engine, on `hardware` (default: what is detected). None when the model's shape is unknown offline."""

    try:
        shape = load_shape(model)
    except ConfigError as err:
        log.info("no memory plan for GRPO: %s", err)
        return None
    hardware = hardware or detect()
    workload = grpo_workload(recipe, shape, gpu_memory_gib=hardware.gpu_memory_gib)
    setup = Setup(gpus_per_node=hardware.gpus_per_node, nodes=hardware.nodes, gpu_memory_gib=hardware.gpu_memory_gib,
                  strategy="ddp", checkpointing=recipe.grpo.gradient_checkpointing, fused_loss=trl_fuses_sft_loss(),
                  attention="sdpa", packing=False, device="cuda" if hardware.device == "cuda" else "cpu")
    return plan(workload, setup)
