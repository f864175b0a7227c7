"""Every student recipe validates offline; contexts, templates and accelerate configs are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from distill.errors import ConfigError
from distill.train.data import IGNORE, check_template, tokenize_row
from distill.train.launch import accelerate_plugin
from distill.train.recipe import load_student_recipe

from .conftest import REPO

STUDENTS = REPO / "students"
RECIPES = sorted(STUDENTS.glob("*.yaml"))
R1_BASES = {
    "Qwen/Qwen2.5-Math-1.5B", "Qwen/Qwen2.5-Math-7B", "Qwen/Qwen2.5-14B", "Qwen/Qwen2.5-32B",
    "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.3-70B-Instruct",
}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_recipe_validates(path: Path) -> None:
    recipe = load_student_recipe(path)
    context = recipe.declared_context()
    assert context is None or recipe.max_length <= context
    if recipe.chat_template:
        assert recipe.file(recipe.chat_template).is_file()


def test_the_six_r1_distill_bases_have_full_and_adapter_recipes_with_sources() -> None:
    recipes = [load_student_recipe(p) for p in RECIPES]
    by_base: dict[str, set[str]] = {}
    for recipe in recipes:
        by_base.setdefault(recipe.model, set()).add(recipe.mode)
    for base in R1_BASES:
        assert "full" in by_base.get(base, set()), base
        assert by_base[base] & {"lora", "qlora"}, base
    for recipe in recipes:
        if recipe.model in R1_BASES:
            assert recipe.sources and recipe.model_max_context, recipe.path
            assert recipe.bf16 and recipe.gradient_checkpointing and recipe.warmup_ratio == 0.03
            assert recipe.lr_scheduler_type.startswith("cosine")
            assert recipe.trust_remote_code is False
            assert 96 <= (recipe.global_batch_size or 0) <= 128
            if recipe.mode == "full":
                assert 1e-5 <= recipe.learning_rate <= 5e-5 and 2 <= recipe.num_train_epochs <= 5
                assert 16384 <= recipe.max_length <= 32768
            if "Math" in recipe.model:  # 4k context raised as R1 and open-r1 did
                assert recipe.model_max_context == 4096 and recipe.max_position_embeddings == 32768
                assert recipe.rope_theta == 300000.0


def test_large_students_shard_with_fsdp_or_zero3() -> None:
    for name in ("qwen2.5-14b.yaml", "qwen2.5-32b.yaml", "llama-3.3-70b.yaml"):
        recipe = load_student_recipe(STUDENTS / name)
        assert recipe.distributed in ("fsdp", "deepspeed") and recipe.accelerate_config


def test_max_length_above_the_declared_context_is_rejected(tmp_path: Path) -> None:
    data = yaml.safe_load((STUDENTS / "qwen2.5-math-7b.yaml").read_text())
    del data["max_position_embeddings"], data["rope_theta"]
    data["chat_template"] = str(STUDENTS / "templates" / "qwen2.5-think.jinja")
    data["accelerate_config"] = str(STUDENTS / "accelerate" / "fsdp.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"bad.yaml: max_length 32768 is above the model's context of 4096"):
        load_student_recipe(path)
    with pytest.raises(ConfigError, match="above the model's context of 2048"):
        load_student_recipe(STUDENTS / "tiny.yaml", ["max_length=4096"])


def test_recipe_errors_name_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tiny.yaml: unknown key 'learning_rat'"):
        load_student_recipe(STUDENTS / "tiny.yaml", ["learning_rat=1.0"])
    with pytest.raises(ConfigError, match=r"key 'mode': expected"):
        load_student_recipe(STUDENTS / "tiny.yaml", ["mode=adapter"])
    with pytest.raises(ConfigError, match=r"tiny: key 'hidden_size'"):
        load_student_recipe(STUDENTS / "tiny.yaml", ["tiny.hidden_size=big"])
    with pytest.raises(ConfigError, match="chat_template.*no such file"):
        load_student_recipe(STUDENTS / "tiny.yaml", ["chat_template=templates/missing.jinja"])
    with pytest.raises(ConfigError, match="global_batch_size 64"):
        load_student_recipe(STUDENTS / "qwen2.5-math-7b.yaml", ["global_batch_size=64"])


def test_fsdp_and_zero3_configs_build_accelerate_plugins() -> None:
    fsdp = accelerate_plugin(STUDENTS / "accelerate" / "fsdp.yaml")
    assert fsdp.fsdp_version == 2 and fsdp.reshard_after_forward is True
    assert fsdp.state_dict_type.name == "SHARDED_STATE_DICT"
    zero3 = accelerate_plugin(STUDENTS / "accelerate" / "zero3.yaml")
    assert zero3.deepspeed_config["zero_optimization"]["stage"] == 3
    assert zero3.zero3_init_flag and zero3.deepspeed_config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]


@pytest.mark.parametrize(("template", "eos"), [("qwen2.5-think.jinja", "<|im_end|>"), ("llama3-think.jinja", "<|eot_id|>")])
def test_student_templates_train_the_think_block_and_the_eos(toy_tokenizer, template: str, eos: str) -> None:
    source = (STUDENTS / "templates" / template).read_text()
    answer = "<think>\nadd 2 and 2\n</think>\n\nThe answer is \\boxed{4}."
    messages = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": answer}]
    original = toy_tokenizer.chat_template
    try:
        toy_tokenizer.chat_template = source
        ids, labels = tokenize_row(toy_tokenizer, messages)
        trained = toy_tokenizer.decode([t for t in labels if t != IGNORE])
        prompt = toy_tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
        plain = toy_tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True, open_think=False)
        if eos == "<|im_end|>":
            check_template(toy_tokenizer, template)  # the toy vocabulary has ChatML's tokens
    finally:
        toy_tokenizer.chat_template = original
    assert trained == answer + eos
    assert prompt.endswith("assistant<|end_header_id|>\n\n<think>\n" if "llama" in template else "<|im_start|>assistant\n<think>\n")
    assert not plain.endswith("<think>\n") and "None" not in prompt
