"""The filter registry: every filter is documented, has a doctest, is configurable, and the example
config names exactly the config's groups and keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from distill.filters import CHECKS, FILTER_NAMES, FilterConfig, load_filter_config
from distill.filters.run import active_names, build_checks
from distill.text import language_share

REPO = Path(__file__).resolve().parents[2]


def test_every_check_is_documented_configurable_and_doctested():
    groups = {f.name for f in dataclasses.fields(FilterConfig)}
    for name, factory in CHECKS.items():
        assert name in groups, name
        assert factory.__doc__ and ">>>" in factory.__doc__, name
        config = load_filter_config(None, [f"{name}.enabled=false", "decontamination.enabled=false"])
        assert name not in [n for n, _ in build_checks(config)]
    assert set(CHECKS) | {"decontamination"} <= set(FILTER_NAMES)


def test_all_filters_on_lists_every_name():
    config = load_filter_config(None, ["long_paragraphs.enabled=true", "code_in_reasoning.enabled=true",
                                       "selection.max_per_problem=1", "selection.drop_always_solved=true",
                                       "selection.drop_never_solved=true"])
    # A run sampled with teacher logprobs adds the token-id check (distill.filters.tokens) after the others.
    checks = [*build_checks(config), ("token_mismatch", lambda sample, problem: None)]
    assert active_names(config, checks) == list(FILTER_NAMES)


def test_example_recipe_is_the_defaults():
    loaded = load_filter_config(REPO / "recipes" / "filters.yaml")
    assert loaded == FilterConfig()


def test_language_share_for_rl_reward():
    assert language_share("Let us add the numbers carefully.", "en") == 1.0
    assert language_share("我们先把数字加起来。", "en") == 0.0
    assert 0.4 < language_share("First we add 然后 we check 检查", "en") < 0.8
    assert language_share("Сложим числа и проверим.", "ru") == 1.0
