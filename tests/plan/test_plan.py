"""The planner's arithmetic against hand-computed cases and the published formulas it must agree with,
the verdict and the smallest setup, the GRPO and on-policy-distillation workloads, and the CLI."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from distill.cli import app
from distill.plan import GIB, KNOWN_SHAPES, Setup, TrainedModel, Workload, estimate
from distill.plan.activations import head_saves, layer_saves
from distill.plan.memory import model_states
from distill.plan.precision import NF4_BYTES, precision_path
from distill.plan.recipes import grpo_workload, opd_workload
from distill.plan.search import plan, smallest_setup
from distill.plan.shapes import ModelShape, shape_from_config

QWEN7 = KNOWN_SHAPES["Qwen/Qwen2.5-Math-7B"]
LLAMA8 = KNOWN_SHAPES["meta-llama/Llama-3.1-8B"]
# A tiny shape whose per-layer counts are easy to do by hand.
TOY = ModelShape("toy", vocab_size=100, hidden_size=8, intermediate_size=16, num_layers=2, num_heads=2,
                 num_kv_heads=1, head_dim=4)


@pytest.mark.parametrize("name", sorted(KNOWN_SHAPES))
def test_parameter_counts_equal_transformers_and_peft(name: str) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    s = KNOWN_SHAPES[name].with_layers(2)
    cls = Qwen2Config if s.qkv_bias else LlamaConfig
    config = cls(vocab_size=s.vocab_size, hidden_size=s.hidden_size, intermediate_size=s.intermediate_size,
                 num_hidden_layers=2, num_attention_heads=s.num_heads, num_key_value_heads=s.num_kv_heads,
                 tie_word_embeddings=s.tied_embeddings)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == s.total_params()
    peft = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    assert sum(p.numel() for p in peft.parameters() if p.requires_grad) == s.lora_params(16)
    assert shape_from_config(config.to_dict()).total_params() == s.total_params()


def test_model_states_follow_the_precision_path_and_the_published_zero_formula() -> None:
    psi = QWEN7.total_params()
    w = Workload(TrainedModel(QWEN7, dtype="bfloat16"), seq_len=1024)
    # DDP with bf16 weights: torch AdamW keeps bf16 moments, 2 + 2 + 4 bytes; DDP's bucket doubles the gradients.
    ddp = Setup(gpus_per_node=8, strategy="ddp")
    assert model_states(w, ddp, precision_path(w, ddp)) == (2 * psi, 2 * 2 * psi, 4 * psi)
    one = Setup(gpus_per_node=1, strategy="ddp")
    assert model_states(w, one, precision_path(w, one)) == (2 * psi, 2 * psi, 4 * psi)
    # FSDP2 under accelerate's bf16 mixed precision: fp32 master, gradients and moments, sharded: the ZeRO
    # paper's stage-3 model states, (2 + 2 + 12) x psi / N = 16 psi / N.
    fsdp = Setup(gpus_per_node=8, nodes=2, strategy="fsdp")
    assert sum(model_states(w, fsdp, precision_path(w, fsdp))) == pytest.approx(16 * psi / 16)
    # ZeRO-3: DeepSpeed's estimator's 18 bytes per parameter.
    zero3 = Setup(gpus_per_node=8, strategy="zero3")
    assert sum(model_states(w, zero3, precision_path(w, zero3))) == pytest.approx(18 * psi / 8)


def test_lora_and_qlora_model_states() -> None:
    lora = Workload(TrainedModel(LLAMA8, mode="lora", lora_r=16), seq_len=1024)
    setup = Setup()
    adapters = LLAMA8.lora_params(16)
    assert model_states(lora, setup, precision_path(lora, setup)) == (
        2 * LLAMA8.total_params() + 4 * adapters, 4 * adapters, 8 * adapters)
    qlora = Workload(TrainedModel(LLAMA8, mode="qlora", lora_r=16), seq_len=1024)
    weights, _, _ = model_states(qlora, setup, precision_path(qlora, setup))
    linears = LLAMA8.linear_params()
    # NF4 linears, and everything else upcast to fp32 by prepare_model_for_kbit_training.
    assert weights == pytest.approx(linears * NF4_BYTES + (LLAMA8.total_params() - linears) * 4 + 4 * adapters)
    assert NF4_BYTES == pytest.approx(0.51587, abs=1e-5)


def test_layer_activations_by_hand() -> None:
    # bf16 weights on CPU, full fine-tuning, T = 10 tokens, h = 8, f = 16, 2 heads x 4, 1 kv head.
    w = Workload(TrainedModel(TOY, dtype="bfloat16", bf16=False), seq_len=10)
    setup = Setup(device="cpu", attention="sdpa", packing=True)
    saves = layer_saves(w, setup, precision_path(w, setup))
    T, h, f = 10, 8, 16
    assert saves["norms"] == 2 * (4 * T * h + 4 * T + 2 * T * h)  # fp32 input + rsqrt + normalised bf16
    assert saves["linear inputs"] == 2 * 2 * T * h + 2 * T * h + 2 * T * f  # qkv/gate-up shared, o, down
    assert saves["attention"] == 2 * T * h + 2 * 2 * T * h + 2 * T * h + 4 * T * 2  # q, repeated k/v, out, lse
    assert saves["mlp"] == 3 * 2 * T * f
    # Unpacked (no mask): sdpa takes the grouped k/v without repeating them.
    unpacked = layer_saves(w, setup.replace(packing=False), precision_path(w, setup))
    assert unpacked["attention"] == saves["attention"] - 2 * 2 * T * (h - 4)
    # LoRA (frozen base): no linear inputs, no normalised inputs before the frozen norm weights, and per
    # adapter its fp32 input after dropout, the dropout mask (fp32 noise on CPU, a bool on CUDA) and
    # lora_A's output.
    lora = Workload(TrainedModel(TOY, mode="lora", dtype="bfloat16", bf16=False, lora_r=2), seq_len=10)
    ls = layer_saves(lora, setup, precision_path(lora, setup))
    assert "linear inputs" not in ls and ls["norms"] == 2 * (4 * T * h + 4 * T)
    inputs = 6 * h + f  # q, k, v, o, gate, up take h features (o takes heads x head_dim = 8); down takes f
    assert ls["lora"] == (4 + 4) * T * inputs + 7 * 4 * T * 2
    gpu = setup.replace(device="cuda")
    assert layer_saves(lora, gpu, precision_path(lora, gpu))["lora"] == (4 + 1) * T * inputs + 7 * 4 * T * 2
    assert head_saves(w, setup, precision_path(w, setup))["head input"] == 2 * T * h + 8 * T


def test_checkpointing_and_the_fused_loss_lower_the_peak() -> None:
    w = Workload(TrainedModel(QWEN7), seq_len=32768, micro_batch=2)
    base = Setup(gpus_per_node=8, strategy="fsdp", attention="flash_attention_2", checkpointing=True)
    with_all = estimate(w, base).total
    assert estimate(w, base.replace(checkpointing=False)).total > with_all * 3
    full_logits = estimate(w, base.replace(fused_loss=False))
    assert full_logits.total > with_all + 60 * GIB and full_logits.phase == "loss backward"


def test_the_7b_recipe_shape_does_not_fit_ddp_and_the_search_finds_fsdp() -> None:
    w = Workload(TrainedModel(QWEN7), seq_len=32768, micro_batch=2)
    ddp = Setup(gpus_per_node=8, gpu_memory_gib=80, strategy="ddp", attention="flash_attention_2")
    result = plan(w, ddp)
    assert not result.fits and "does not fit" in result.verdict()
    setup, breakdown = result.smallest
    assert setup.strategy == "fsdp" and setup.checkpointing and setup.fused_loss
    assert breakdown.total <= 80 * GIB and setup.nodes == 1
    # Fewest GPUs first: no setup with fewer GPUs fits.
    for g in (1, 2, 4, 8):
        if g < setup.world:
            assert smallest_setup(w, ddp, max_gpus_per_node=g, max_nodes=1) is None


def test_grpo_holds_a_reference_model_and_opd_a_local_teacher_but_not_a_served_one() -> None:
    from distill.reinforce.recipe import recipe_from_dict

    shape = KNOWN_SHAPES["Qwen/Qwen2.5-Math-1.5B"]
    grpo = recipe_from_dict({"model": "m", "grpo": {"num_generations": 4, "per_device_train_batch_size": 4,
                                                    "max_completion_length": 4096, "generation": "vllm"}})
    setup = Setup(gpus_per_node=8, gpu_memory_gib=80, attention="flash_attention_2")
    with_ref = grpo_workload(grpo, shape)
    assert [m.role for m in with_ref.frozen] == ["reference"] and with_ref.generation_reserve == 0.3
    no_ref = grpo_workload(recipe_from_dict({**{"model": "m"}, "grpo": {**grpo.grpo.__dict__, "beta": 0.0}}), shape)
    reference = estimate(with_ref, setup).parts["frozen models"]
    assert reference == shape.total_params() * 2 and estimate(no_ref, setup).parts["frozen models"] == 0
    assert estimate(with_ref, setup).parts["generation"] == pytest.approx(0.3 * 80 * GIB)

    student = Workload(TrainedModel(shape), seq_len=8192)
    teacher = KNOWN_SHAPES["Qwen/Qwen2.5-32B"]
    served = estimate(opd_workload(student, teacher, served=True), setup)
    local = estimate(opd_workload(student, teacher, served=False), setup)
    assert served.parts["frozen models"] == 0 and served.total == estimate(student, setup).total
    assert local.parts["frozen models"] == teacher.total_params() * 2
    sharded = estimate(opd_workload(student, teacher, served=False), setup.replace(strategy="fsdp"))
    assert sharded.parts["frozen models"] == pytest.approx(teacher.total_params() * 2 / 8)


def test_cli_plan_prints_a_breakdown_and_a_verdict() -> None:
    result = CliRunner().invoke(app, ["plan", "--student", "students/qwen2.5-math-7b.yaml", "--gpus", "8",
                                      "--gpu-memory", "80", "--set", "distributed=ddp"])
    assert result.exit_code == 0, result.output
    out = result.output
    for line in ("parameters", "gradients", "optimizer", "activations", "total", "verdict: does not fit",
                 "smallest setup that fits:", "tokens/s per GPU"):
        assert line in out, line
    ok = CliRunner().invoke(app, ["plan", "--student", "students/qwen2.5-math-7b.yaml", "--gpus", "8",
                                  "--gpu-memory", "80", "--seq-len", "4096", "--epoch-tokens", "1e9"])
    assert ok.exit_code == 0 and "verdict: fits" in ok.output and "h per epoch" in ok.output


def test_plan_grpo_reads_the_checkpoint_and_counts_its_reference(tiny_model_dir) -> None:
    from distill.plan.hardware import Hardware
    from distill.plan.preflight import plan_grpo
    from distill.reinforce.recipe import recipe_from_dict

    recipe = recipe_from_dict({"grpo": {"num_generations": 4, "per_device_train_batch_size": 8,
                                        "max_completion_length": 64, "generation": "transformers"}})
    result = plan_grpo(recipe, str(tiny_model_dir), Hardware(1, 8.0, 1, "cpu", "test"))
    assert result is not None and result.fits and result.workload.frozen[0].role == "reference"
    assert result.breakdown.phases["rollout"] > 0  # transformers' KV cache while it generates
    assert plan_grpo(recipe, "someone/unknown-model") is None  # never downloads a config
