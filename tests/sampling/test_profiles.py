"""Teacher profiles, prompts and the completion split."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.errors import ConfigError
from distill.records import Problem
from distill.sampling import TeacherProfile, build_prompt, load_profile, profile_for_model
from distill.text import MATH_PROMPT_SUFFIX, split_completion

TEACHERS = sorted((Path(__file__).resolve().parents[2] / "teachers").glob("*.yaml"))


@pytest.mark.parametrize("path", TEACHERS, ids=lambda p: p.name)
def test_shipped_profiles_load_with_r1_defaults(path):
    profile = load_profile(path)
    assert profile.sampling.temperature == 0.6 and profile.sampling.top_p == 0.95
    assert profile.system_prompt is None and profile.math_prompt_suffix == MATH_PROMPT_SUFFIX
    if profile.name != "tiny":
        assert profile.sampling.max_new_tokens == 32768


def test_expected_profiles_ship():
    names = {p.stem for p in TEACHERS}
    assert {"deepseek-r1-api", "r1-distill-qwen-1.5b", "r1-distill-qwen-7b", "r1-distill-qwen-32b", "qwq-32b",
            "vllm-serve", "tiny"} <= names


@pytest.mark.parametrize(("text", "message"), [
    ("name: t\nmodel: m\nbackend: transformers\ntemprature: 0.6\n", "t.yaml: unknown key 'temprature'"),
    ("name: t\nmodel: m\nsampling:\n  top_p: 2\n", "t.yaml: sampling: top_p: expected a value in"),
    ("name: t\nmodel: m\nbackend: tpu\n", "t.yaml: key 'backend': expected one of"),
    ("name: t\nmodel: m\nbackend: openai\n", "t.yaml: api.base_url: the openai backend needs a base URL"),
    ("name: t\nmodel: m\nlocal:\n  batch_size: many\n", "t.yaml: local: key 'batch_size': expected int"),
    ("name: t\nmodel: m\napi:\n  api_key: sk-123\n", "t.yaml: key 'api_key': keys do not belong in profiles"),
])
def test_a_wrong_key_or_value_names_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert message in str(err.value)


def test_profile_for_model_reads_the_generation_config(tiny_model_dir):
    profile = profile_for_model(str(tiny_model_dir))
    assert profile.backend == "transformers" and profile.sampling.temperature == 0.6
    with pytest.raises(ConfigError, match="--backend"):
        profile_for_model(str(tiny_model_dir), backend="tpu")


def test_prompts_follow_r1():
    profile = TeacherProfile(name="t", model="m")
    math = build_prompt(Problem(id="m", prompt="What is 2+2?"), profile)
    assert math == [{"role": "user", "content": f"What is 2+2?\n{MATH_PROMPT_SUFFIX}"}]
    code = build_prompt(Problem(id="c", prompt="def f():", kind="code", tests={"type": "check"}), profile)
    assert code == [{"role": "user", "content": "def f():"}]
    with_system = TeacherProfile(name="t", model="m", system_prompt="Be brief.")
    assert build_prompt(Problem(id="m", prompt="x?"), with_system)[0] == {"role": "system", "content": "Be brief."}


def test_prompt_template_file_is_relative_to_the_profile(tmp_path):
    (tmp_path / "tmpl.txt").write_text("Q: {prompt}\n{suffix}\nA:")
    (tmp_path / "t.yaml").write_text("name: t\nmodel: m\nprompt_template: tmpl.txt\n")
    messages = build_prompt(Problem(id="m", prompt="2+2?"), load_profile(tmp_path / "t.yaml"))
    assert messages[0]["content"] == f"Q: 2+2?\n{MATH_PROMPT_SUFFIX}\nA:"


@pytest.mark.parametrize(("text", "reasoning"), [
    ("<think>\nAdd 2 and 2.\n</think>\n\nThe answer is \\boxed{4}.", None),
    ("Add 2 and 2.\n</think>\n\nThe answer is \\boxed{4}.", None),
    ("\n\nThe answer is \\boxed{4}.", "Add 2 and 2.\n"),
])
def test_split_is_the_same_whichever_way_the_think_block_arrives(text, reasoning):
    assert split_completion(text, reasoning) == ("Add 2 and 2.", "The answer is \\boxed{4}.", True)


def test_an_unclosed_think_block_is_kept_and_marked():
    assert split_completion("<think>\nAdd 2 and 2, then") == ("Add 2 and 2, then", "", False)
    assert split_completion("Add 2 and 2, then") == ("Add 2 and 2, then", "", False)
