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
        teacher = build_teacher(api_profile(server.url, concurrency=1))
        started = time.perf_counter()
        teacher.generate(problems[:1], SamplingConfig(n=1))
    assert time.perf_counter() - started >= 0.4 and server.count == 2


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


def test_canary_key_is_in_no_file_and_no_log(tmp_path, problems, monkeypatch, caplog, capsys):
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
        result = CliRunner().invoke(app, ["generate", "--problems", str(problems_file), "--teacher", str(profile_file),
                                          "--out", str(tmp_path / "run"), "--samples", "2"])
    assert result.exit_code == 0, result.output
    assert all(r["authorization"] == f"Bearer {canary}" for r in server.requests)  # the key was used
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(files) >= 3
    assert not [p for p in files if canary.encode() in p.read_bytes()]
    captured = capsys.readouterr()
    assert canary not in caplog.text + result.output + captured.out + captured.err
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
