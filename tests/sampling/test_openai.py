"""The openai backend against a local scripted server: faults, retries, n, auth, secrets, reasoning fields."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter

import pytest

from distill.sampling import SamplingConfig, TeacherProfile, build_teacher, generate_run, read_samples
from distill.sampling.backends.openai_backend import RequestFailed
from distill.sampling.profile import ApiOptions
from distill.testing.scripted_server import Fault, ScriptedServer


def api_profile(urls, **api) -> TeacherProfile:
    options = dict(base_url=urls, concurrency=4, request_timeout=5.0, max_retries=4, retry_base_delay=0.001,
                   retry_max_delay=0.01)
    options.update(api)
    return TeacherProfile(name="api", model="scripted", backend="openai", api=ApiOptions(**options))


def test_fault_schedule_completes_with_every_key_once_and_exact_request_count(tmp_path, problems):
    faults = {2: Fault("status", 429, retry_after=0.01), 4: Fault("status", 500), 5: Fault("drop"),
              7: Fault("slow", delay=1.5), 9: Fault("malformed")}
    with ScriptedServer(faults=faults) as server:
        profile = api_profile(server.url, request_timeout=0.5)
        teacher = build_teacher(profile)
        summary = generate_run(problems, profile, SamplingConfig(n=3), tmp_path / "run", teacher=teacher)
    assert summary["complete"]
    assert Counter(s.key for s in read_samples(tmp_path / "run")) == Counter(
        {(p.id, i): 1 for p in problems for i in range(3)})
    # One request per problem (n=3 in one call) plus one retry per scripted fault.
    assert server.count == len(problems) + len(faults) == teacher.backend.requests_sent
    sample = next(read_samples(tmp_path / "run"))
    assert sample.content == "The answer is \\boxed{42}." and sample.think_closed and sample.completion_tokens


def test_retry_after_is_honoured(problems):
    with ScriptedServer(faults={1: Fault("status", 429, retry_after=0.4)}) as server:
        teacher = build_teacher(api_profile(server.url, concurrency=1, retry_max_delay=1.0))
        started = time.perf_counter()
        teacher.generate(problems[:1], SamplingConfig(n=1))
    assert time.perf_counter() - started >= 0.4 and server.count == 2


@pytest.mark.timeout(30)  # the bug this guards against was an endless sleep
@pytest.mark.parametrize("value", ["inf", "1e12", "nan", "-5", "soon", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_retry_after_is_capped_and_garbage_is_ignored(problems, value):
    # `Retry-After: inf` used to sleep forever; the wait is now at most retry_max_delay.
    with ScriptedServer(faults={1: Fault("status", 429, retry_after=value)}) as server:
        teacher = build_teacher(api_profile(server.url, concurrency=1, retry_max_delay=0.2))
        started = time.perf_counter()
        samples = teacher.generate(problems[:1], SamplingConfig(n=1))
    assert len(samples) == 1 and server.count == 2
    assert time.perf_counter() - started < 3.0


@pytest.mark.timeout(30)
def test_a_trickling_body_fails_at_the_deadline_and_is_retried(problems, caplog):
    # One byte every 0.2 s never trips httpx's per-read timeout (5 s); the total deadline (0.6 s) does.
    with ScriptedServer(faults={1: Fault("trickle", delay=0.2)}) as server:
        profile = api_profile(server.url, concurrency=1, request_timeout=5.0, request_deadline=0.6)
        started = time.perf_counter()
        samples = build_teacher(profile).generate(problems[:1], SamplingConfig(n=2))
    elapsed = time.perf_counter() - started
    assert len(samples) == 2 and server.count == 2
    assert 0.6 <= elapsed < 4.0
    assert "no complete response within the request deadline (0.6s)" in caplog.text


@pytest.mark.parametrize("kind", ["empty", "null_message", "finish_error", "non_dict", "no_choices", "malformed"])
def test_a_200_without_usable_text_is_retried_and_never_stored(tmp_path, problems, kind):
    faults = {2: Fault(kind), 5: Fault(kind)}
    with ScriptedServer(faults=faults) as server:
        teacher = build_teacher(api_profile(server.url))
        summary = generate_run(problems, teacher.profile, SamplingConfig(n=3), tmp_path / "run", teacher=teacher)
    stored = list(read_samples(tmp_path / "run"))
    assert summary["complete"] and server.count == len(problems) + 2 == teacher.backend.requests_sent
    assert Counter(s.key for s in stored) == Counter({(p.id, i): 1 for p in problems for i in range(3)})
    assert all(s.content == "The answer is \\boxed{42}." and s.finish_reason == "stop" for s in stored)


def test_the_good_choices_of_a_partly_spoiled_answer_are_kept(problems):
    # Choice 1 of 3 is empty: choices 0 and 2 are kept, and one more sample is asked for.
    with ScriptedServer(faults={1: Fault("empty", which=[1])}) as server:
        samples = build_teacher(api_profile(server.url, concurrency=1)).generate(problems[:1], SamplingConfig(n=3))
    assert [s.sample_index for s in samples] == [0, 1, 2] and all(s.content for s in samples)
    assert [r["body"]["n"] for r in server.requests] == [3, 1]


def test_unusable_answers_past_the_retry_budget_fail_fast_and_name_the_cause(tmp_path, problems):
    faults = {i: Fault("finish_error") for i in range(1, 50)}
    with ScriptedServer(faults=faults) as server:
        profile = api_profile(server.url, concurrency=1, max_retries=2)
        with pytest.raises(RequestFailed, match=r"gave up on p0 after 3 failed attempts .*finish_reason 'error'") as err:
            generate_run(problems[:1], profile, SamplingConfig(n=2), tmp_path / "run")
    assert server.count == 3 and err.value.lost == 2
    assert "2 of 2 requested samples were not received" in str(err.value)
    assert list(read_samples(tmp_path / "run")) == []


def test_a_fatal_error_keeps_every_completion_received_and_counts_the_lost(tmp_path, problems):
    # One request in flight at a time: requests 1-3 answer (6 samples), request 4 is a fatal 403.
    with ScriptedServer(faults={4: Fault("status", 403, message="model not allowed")}) as server:
        profile = api_profile(server.url, concurrency=1)
        with pytest.raises(RequestFailed, match="HTTP 403: model not allowed") as err:
            generate_run(problems, profile, SamplingConfig(n=2), tmp_path / "run")
    assert server.count == 4 and err.value.lost == len(problems) * 2 - 6
    assert f"{len(problems) * 2 - 6} of {len(problems) * 2} requested samples" in str(err.value)
    assert sorted(s.key for s in read_samples(tmp_path / "run")) == [(f"p{i}", j) for i in range(3) for j in range(2)]


def test_exhausted_retries_keep_every_completion_received(tmp_path, problems):
    # The server answers three requests, then fails everything: the three answers are stored.
    faults = {i: Fault("status", 503) for i in range(4, 200)}
    with ScriptedServer(faults=faults) as server:
        profile = api_profile(server.url, concurrency=1, max_retries=1)
        with pytest.raises(RequestFailed, match="gave up .* HTTP 503") as err:
            generate_run(problems, profile, SamplingConfig(n=2), tmp_path / "run")
    assert err.value.lost == len(problems) * 2 - 6 and len(list(read_samples(tmp_path / "run"))) == 6
    assert server.count < 4 + 2 * len(problems)


def test_a_server_error_body_never_echoes_the_key(problems, monkeypatch):
    monkeypatch.setenv("SCRIPTED_KEY", "sk-echoed-7c1b")
    with ScriptedServer(faults={1: Fault("status", 401, message="bad key: {authorization}")}) as server:
        teacher = build_teacher(api_profile(server.url, api_key_env="SCRIPTED_KEY"))
        with pytest.raises(RequestFailed) as err:
            teacher.generate(problems[:1], SamplingConfig(n=1))
    assert server.requests[0]["authorization"] == "Bearer sk-echoed-7c1b"
    assert "sk-echoed-7c1b" not in str(err.value) and "bad key: Bearer ***" in str(err.value)


def test_retries_are_one_line_per_kind_not_one_per_request(problems, caplog):
    caplog.set_level(logging.INFO)
    faults = {i: Fault("status", 503) for i in range(1, 10)}
    with ScriptedServer(faults=faults) as server:
        build_teacher(api_profile(server.url, concurrency=2, max_retries=20)).generate(problems, SamplingConfig(n=1))
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "HTTP 503" in r.getMessage()]
    assert server.count == len(problems) + 9 and len(warnings) == 1
    assert "HTTP 503 x9" in caplog.text  # the summary line at the end of the stream


def test_server_that_ignores_n_still_gives_n_samples(problems):
    with ScriptedServer(ignore_n=True) as server:
        samples = build_teacher(api_profile(server.url)).generate(problems[:3], SamplingConfig(n=4))
    assert [(s.problem_id, s.sample_index) for s in samples] == [(p.id, i) for p in problems[:3] for i in range(4)]
    assert server.count == 12
    assert [r["body"]["n"] for r in server.requests if r["body"]["messages"][0]["content"].startswith("What is 0 ")] == [4, 3, 2, 1]


def test_401_fails_fast_with_status_and_message(tmp_path, problems, monkeypatch):
    monkeypatch.setenv("SCRIPTED_KEY", "wrong-key")
    with ScriptedServer(api_key="right-key") as server:
        profile = api_profile(server.url, api_key_env="SCRIPTED_KEY", concurrency=1)
        with pytest.raises(RequestFailed, match="HTTP 401: Authentication Fails") as err:
            generate_run(problems, profile, SamplingConfig(n=1), tmp_path / "run")
    assert server.count == 1 and "wrong-key" not in str(err.value)


def test_canary_key_is_in_no_file_and_no_log(tmp_path, problems, monkeypatch, caplog, capsys, log_levels):
    from typer.testing import CliRunner

    from distill.cli import app
    from distill.jsonl import write_jsonl
    from distill.records import to_dict

    canary = "sk-canary-5f2e0c1d9a"
    monkeypatch.setenv("CANARY_API_KEY", canary)
    problems_file = tmp_path / "problems.jsonl"
    write_jsonl(problems_file, (to_dict(p) for p in problems))
    caplog.set_level(logging.DEBUG)
    with ScriptedServer(api_key=canary, faults={1: Fault("status", 503), 2: Fault("drop")}) as server:
        profile_file = tmp_path / "teacher.yaml"
        profile_file.write_text(f"name: canary\nmodel: scripted\nbackend: openai\napi:\n  base_url: {server.url}\n"
                                "  api_key_env: CANARY_API_KEY\n  retry_base_delay: 0.001\n")
        result = CliRunner().invoke(app, ["--verbose", "generate", "--problems", str(problems_file), "--teacher",
                                          str(profile_file), "--out", str(tmp_path / "run"), "--samples", "2"])
    assert result.exit_code == 0, result.output
    assert all(r["authorization"] == f"Bearer {canary}" for r in server.requests)  # the key was used
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(files) >= 3
    assert not [p for p in files if canary.encode() in p.read_bytes()]
    captured = capsys.readouterr()
    assert canary not in caplog.text + result.output + captured.out + captured.err
    assert "HTTP Request: POST" in caplog.text  # --verbose did let httpx's per-request lines through
    assert "CANARY_API_KEY" in (tmp_path / "run" / "manifest.json").read_text()  # the variable's name is kept


def test_reasoning_fields_split_like_inline_think(problems):
    results = {}
    for field in (None, "reasoning_content", "reasoning"):
        with ScriptedServer(reasoning_field=field) as server:
            samples = build_teacher(api_profile(server.url)).generate(problems[:2], SamplingConfig(n=1))
        results[field] = [(s.reasoning, s.content, s.think_closed) for s in samples]
    assert results[None] == results["reasoning_content"] == results["reasoning"]
    assert results[None][0][0].startswith("Let me think")


def test_base_urls_are_shared_round_robin(problems):
    with ScriptedServer() as first, ScriptedServer() as second:
        samples = build_teacher(api_profile([first.url, second.url])).generate(problems, SamplingConfig(n=1))
    assert len(samples) == len(problems) and first.count == second.count == len(problems) // 2


def test_completions_endpoint_renders_the_chat_template(tmp_path, problems, tiny_model_dir):
    with ScriptedServer() as server:
        profile = dataclasses.replace(api_profile(server.url, endpoint="completions"), tokenizer=str(tiny_model_dir))
        samples = build_teacher(profile).generate(problems[:1], SamplingConfig(n=2))
    assert len(samples) == 2 and server.requests[0]["path"] == "/v1/completions"
    prompt = server.requests[0]["body"]["prompt"]
    assert prompt.startswith("<|im_start|>user\nWhat is 0 + 0?") and prompt.endswith("<|im_start|>assistant\n<think>\n")


def test_a_redirect_is_not_followed_and_fails_fast(problems, monkeypatch):
    monkeypatch.setenv("SCRIPTED_KEY", "sk-redirected-0a")
    with ScriptedServer(faults={1: Fault("status", 307)}) as server:
        teacher = build_teacher(api_profile(server.url, api_key_env="SCRIPTED_KEY"))
        with pytest.raises(RequestFailed, match="HTTP 307: the server redirects"):
            teacher.generate(problems[:1], SamplingConfig(n=1))
    assert server.count == 1
