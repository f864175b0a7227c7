"""Budgets mean what they say with an API teacher: a cost cap needs prices, a token cap needs token
counts (from `usage`, else the profile's local tokenizer); profiles with impossible API options fail
when they load, naming the file and key."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from distill.errors import ConfigError
from distill.rundir import read_samples
from distill.sampling import Budget, SamplingConfig, TeacherProfile, build_teacher, generate_run, load_profile
from distill.sampling.backends.transformers_backend import load_tokenizer
from distill.sampling.engine import NO_TOKEN_COUNTS
from distill.sampling.profile import ApiOptions
from distill.testing.scripted_server import ScriptedServer, default_responder


def api_profile(url: str, **api) -> TeacherProfile:
    options = dict(base_url=url, concurrency=2, max_retries=2, retry_base_delay=0.001, retry_max_delay=0.01)
    options.update(api)
    return TeacherProfile(name="api", model="scripted", backend="openai", api=ApiOptions(**options))


def test_max_cost_without_prices_is_refused_before_anything_is_sent(tmp_path, problems):
    with ScriptedServer() as server:
        with pytest.raises(ConfigError, match=r"--max-cost 1: the teacher profile api has no prices"):
            generate_run(problems, api_profile(server.url), SamplingConfig(), tmp_path / "run", budget=Budget(max_cost=1.0))
    assert server.count == 0 and not (tmp_path / "run").exists()


def test_max_cost_with_prices_stops_the_run(tmp_path, problems):
    # 10 prompt tokens and 11 completion tokens per scripted answer at $1M per million: $21 a sample.
    with ScriptedServer() as server:
        profile = api_profile(server.url, concurrency=1, price_input_per_million=1e6, price_output_per_million=1e6)
        summary = generate_run(problems, profile, SamplingConfig(), tmp_path / "run", budget=Budget(max_cost=50.0))
    assert summary["stopped"] == "budget: max_cost" and summary["samples"] == 3


def test_missing_usage_is_said_once_and_recorded_as_null(tmp_path, problems, caplog):
    with ScriptedServer(usage=False) as server:
        summary = generate_run(problems, api_profile(server.url), SamplingConfig(n=2), tmp_path / "run")
    samples = list(read_samples(tmp_path / "run"))
    assert summary["complete"] and len(samples) == 2 * len(problems) == server.count * 2
    assert all(s.completion_tokens is None and s.prompt_tokens is None for s in samples)
    said = [r for r in caplog.records if "sent no token usage" in r.getMessage() and r.levelno == logging.WARNING]
    assert len(said) == 1 and "completion_tokens are recorded as null" in said[0].getMessage()


def test_a_token_budget_without_usage_or_tokenizer_stops_with_an_error_and_keeps_what_arrived(tmp_path, problems):
    with ScriptedServer(usage=False) as server:
        profile = api_profile(server.url, concurrency=1)
        with pytest.raises(ConfigError, match="the server sends no token usage and the profile api has no `tokenizer:`"):
            generate_run(problems, profile, SamplingConfig(), tmp_path / "run", budget=Budget(max_tokens=10_000))
    stored = list(read_samples(tmp_path / "run"))
    assert len(stored) >= 1 and stored[0].completion_tokens is None
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert NO_TOKEN_COUNTS in summary


def test_without_usage_tokens_are_counted_with_the_profiles_local_tokenizer(tmp_path, problems, tiny_model_dir):
    tokenizer = load_tokenizer(str(tiny_model_dir))
    with ScriptedServer(usage=False) as server:
        profile = dataclasses.replace(api_profile(server.url, concurrency=1), tokenizer=str(tiny_model_dir))
        summary = generate_run(problems, profile, SamplingConfig(), tmp_path / "run", budget=Budget(max_tokens=30))
    samples = list(read_samples(tmp_path / "run"))
    request = server.requests[0]["body"]
    # The whole completion as the server sent it (think block inline), as a server's usage would count it.
    expected = len(tokenizer(default_responder(request, 0), add_special_tokens=False)["input_ids"])
    first = next(s for s in samples if s.problem_id == "p0")
    assert first.completion_tokens == expected and first.prompt_tokens
    assert summary["stopped"] == "budget: max_tokens" and summary["completion_tokens"] >= 30
    assert len(samples) < len(problems)


def test_a_tokenizer_that_is_not_a_local_folder_is_refused_not_downloaded(problems):
    with ScriptedServer(usage=False) as server:
        profile = dataclasses.replace(api_profile(server.url), tokenizer="deepseek-ai/DeepSeek-R1")
        with pytest.raises(ConfigError, match="tokenizer: deepseek-ai/DeepSeek-R1 is not a local folder"):
            build_teacher(profile).generate(problems[:1], SamplingConfig())


@pytest.mark.parametrize(("api", "message"), [
    ("concurrency: 0", "t.yaml: api: concurrency: expected at least 1 request in flight, got 0"),
    ("max_retries: -1", "t.yaml: api: max_retries: expected 0 or more, got -1"),
    ("request_timeout: 0", "t.yaml: api: request_timeout: expected a positive number of seconds, got 0"),
    ("request_deadline: -5", "t.yaml: api: request_deadline: expected a positive number of seconds, got -5"),
    ("request_deadline: .nan", "t.yaml: api: request_deadline: expected a positive number of seconds, got nan"),
    ("retry_max_delay: .inf", "t.yaml: api: retry_max_delay: expected a finite number >= 0, got inf"),
    ("price_output_per_million: -1", "t.yaml: api: price_output_per_million: expected a finite number >= 0"),
])
def test_impossible_api_options_fail_when_the_profile_loads(tmp_path, api, message):
    path = tmp_path / "t.yaml"
    path.write_text(f"name: t\nmodel: m\nbackend: openai\napi:\n  base_url: http://127.0.0.1:1/v1\n  {api}\n")
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert message in str(err.value)


def test_concurrency_flag_is_checked_naming_the_flag(tmp_path, problems):
    from typer.testing import CliRunner

    from distill.cli import app

    result = CliRunner().invoke(app, ["generate", "--problems", "x", "--out", str(tmp_path / "run"), "--backend",
                                      "openai", "--base-url", "http://127.0.0.1:1/v1", "--model", "m",
                                      "--concurrency", "0"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == "--concurrency 0: concurrency: expected at least 1 request in flight, got 0"
    assert not Path(tmp_path / "run").exists()


def test_the_deadline_defaults_to_the_request_timeout():
    assert ApiOptions(request_timeout=7.0).deadline == 7.0
    assert ApiOptions(request_timeout=7.0, request_deadline=60.0).deadline == 60.0
