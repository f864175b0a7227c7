"""The tiny world: deterministic problems with correct gold traces, a tokenizer that round-trips
them, a chat template that renders what the trainer and sampler expect, and tiny models that load."""

from __future__ import annotations

import re

import pytest

from distill.toy.problems import Step, apply, generate, work_step


def test_generator_is_deterministic_per_seed():
    assert generate(30, seed=7, difficulty=(1, 5)) == generate(30, seed=7, difficulty=(1, 5))
    assert generate(30, seed=7) != generate(30, seed=8)


def test_difficulty_is_validated():
    with pytest.raises(ValueError, match="difficulty"):
        generate(1, difficulty=6)


def _check_line(line: str) -> int:
    """Recompute one worked step of a gold trace from its own text."""
    head, _, rest = line.partition(": ")
    a, op, b = head.split(" ")
    a, b = int(a), int(b)
    result = int(rest.rsplit("so ", 1)[1].rstrip("."))
    assert result == apply(a, [Step(op, b)])
    # Every column's own arithmetic is right: "x+y(+c)=s", "x*m(+c)=p", "x(-c)-y=r".
    for part in rest.rsplit(", so", 1)[0].split(", "):
        expression, value = part.split("=")
        assert eval(expression) == int(value), part  # noqa: S307 - digits and + - * only
    return result


def test_every_gold_trace_is_right():
    for problem, completion in generate(500, seed=3, difficulty=(1, 5)):
        match = re.fullmatch(r"<think>\n(.*)\n</think>\n\nThe answer is \\boxed\{(-?\d+)\}\.", completion, re.S)
        assert match, completion
        lines = match.group(1).split("\n")
        value = int(re.fullmatch(r"Start with (\d+)\.", lines[0]).group(1))
        for line in lines[1:]:
            assert line.startswith(f"{value} ")
            value = _check_line(line)
        assert str(value) == match.group(2) == problem.answer
        assert int(problem.answer) >= 0


def test_work_step_borrows_and_carries():
    assert work_step(1000, Step("-", 999))[1] == 1
    assert work_step(999, Step("+", 1))[0] == "999 + 1: 9+1=10, 9+0+1=10, 9+0+1=10, so 1000."


def test_tokenizer_round_trips_traces_and_keeps_think_tokens(toy_tokenizer):
    for problem, completion in generate(200, seed=1, difficulty=(1, 5)):
        for text in (problem.prompt, completion):
            ids = toy_tokenizer(text)["input_ids"]
            assert toy_tokenizer.decode(ids) == text
            assert toy_tokenizer.decode(ids, skip_special_tokens=True) == text
    think = toy_tokenizer("<think>\n1</think>")["input_ids"]
    assert toy_tokenizer.convert_ids_to_tokens(think)[0] == "<think>"
    digits = toy_tokenizer.convert_ids_to_tokens(toy_tokenizer("12345")["input_ids"])
    assert digits == list("12345")


def test_chat_template_renders_turns_and_think_block(toy_tokenizer):
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    prompt = toy_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n"
    closed = toy_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, open_think=False)
    assert closed.endswith("<|im_start|>assistant\n")
    full = toy_tokenizer.apply_chat_template(
        messages[1:] + [{"role": "assistant", "content": "<think>\nR\n</think>\n\nA"}], tokenize=False
    )
    assert full == "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nR\n</think>\n\nA<|im_end|>\n"
    split = toy_tokenizer.apply_chat_template(
        messages[1:] + [{"role": "assistant", "content": "A", "reasoning_content": "R"}], tokenize=False
    )
    assert split == full
    out = toy_tokenizer.apply_chat_template(
        messages[1:] + [{"role": "assistant", "content": "<think>\nR\n</think>\n\nA"}],
        return_assistant_tokens_mask=True, return_dict=True,
    )
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=False) if m]
    assert toy_tokenizer.decode(masked) == "<think>\nR\n</think>\n\nA<|im_end|>"


@pytest.mark.parametrize("architecture", ["qwen2", "llama"])
def test_tiny_model_saves_loads_and_generates(tmp_path, architecture):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.toy.model import save_tiny_model

    path = save_tiny_model(tmp_path / architecture, architecture=architecture, seed=1)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    text = generate(1, seed=0)[0][1]
    assert tokenizer(text)["input_ids"] == tokenizer.backend_tokenizer.encode(text).ids
    assert model.generation_config.temperature == 0.6 and model.generation_config.top_p == 0.95
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "Q"}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    torch.manual_seed(0)
    out = model.generate(**inputs, max_new_tokens=8, min_new_tokens=8)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 8
