"""Keys by convention (`OPENAI_API_KEY`, `--api-key-env`), keys only over https or loopback, redacted
base URLs, and quiet logs: through the real command line against the scripted server."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import ConfigError
from distill.jsonl import write_jsonl
from distill.records import to_dict
from distill.sampling import SamplingConfig, build_teacher, read_samples
from distill.sampling.backends.openai_backend import RequestFailed, checked_key
from distill.sampling.profile import ApiOptions, TeacherProfile, profile_for_model
from distill.sampling.redact import redact_url, url_secrets
from distill.testing.scripted_server import Fault, ScriptedServer

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-convention-3d9f1a77"


@pytest.fixture
def problems_file(tmp_path, problems) -> Path:
    path = tmp_path / "problems.jsonl"
    write_jsonl(path, (to_dict(p) for p in problems))
    return path


def generate(problems_file: Path, out: Path, base_url: str, *extra: str, verbose: bool = False, samples: int = 2):
    args = ["--verbose"] if verbose else []
    args += ["generate", "--problems", str(problems_file), "--backend", "openai", "--base-url", base_url,
             "--model", "scripted", "--out", str(out), "--samples", str(samples), *extra]
    return CliRunner().invoke(app, args)


def test_generate_with_a_base_url_authenticates_with_openai_api_key_through_a_fault_schedule(
        tmp_path, problems, problems_file, monkeypatch, log_levels):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    faults = {2: Fault("status", 429, retry_after="0"), 3: Fault("status", 500), 4: Fault("drop"),
              5: Fault("empty"), 6: Fault("finish_error"), 7: Fault("non_dict"), 8: Fault("malformed"),
              9: Fault("no_choices"), 10: Fault("null_message"), 11: Fault("status", 503, retry_after="inf")}
    with ScriptedServer(api_key=KEY, faults=faults) as server:
        result = generate(problems_file, tmp_path / "run", server.url)
    assert result.exit_code == 0, result.output
    assert all(r["authorization"] == f"Bearer {KEY}" for r in server.requests)
    assert Counter(s.key for s in read_samples(tmp_path / "run")) == Counter(
        {(p.id, i): 1 for p in problems for i in range(2)})
    assert server.count == len(problems) + len(faults)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert files and not [p for p in files if KEY.encode() in p.read_bytes()]


def test_an_unset_default_variable_sends_no_key_and_says_so_once(tmp_path, problems_file, monkeypatch, caplog,
                                                                 log_levels):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with ScriptedServer() as server:
        result = generate(problems_file, tmp_path / "run", server.url)
    assert result.exit_code == 0, result.output
    assert server.count > 1 and all(r["authorization"] is None for r in server.requests)
    said = [r for r in caplog.records if "OPENAI_API_KEY is not set" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING


def test_a_named_variable_that_is_unset_is_refused_before_anything_is_written(tmp_path, problems_file, monkeypatch):
    monkeypatch.delenv("MY_TEAM_KEY", raising=False)
    with ScriptedServer() as server:
        result = generate(problems_file, tmp_path / "run", server.url, "--api-key-env", "MY_TEAM_KEY")
    assert isinstance(result.exception, ConfigError) and "MY_TEAM_KEY is not set" in str(result.exception)
    assert server.count == 0 and not (tmp_path / "run").exists()


def test_a_key_over_plain_http_to_another_host_is_refused_in_one_line(tmp_path, problems_file):
    # 203.0.113.0/24 is TEST-NET-3: nothing is listening, and nothing is sent (the refusal comes first).
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": KEY}
    result = subprocess.run(
        [sys.executable, "-m", "distill", "generate", "--problems", str(problems_file), "--backend", "openai",
         "--base-url", "http://203.0.113.7:8000/v1", "--model", "m", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: api.base_url http://203.0.113.7:8000/v1: refusing to send the API key from $OPENAI_API_KEY over "
        "plain http to a host that is not this machine; use https, or send no key (unset OPENAI_API_KEY, or give "
        "--api-key-env '')"]
    assert KEY not in result.stdout + result.stderr and not (tmp_path / "run").exists()


@pytest.mark.parametrize(("url", "env", "allowed"), [
    ("https://api.example.com/v1", "OPENAI_API_KEY", True),
    ("http://127.0.0.1:8000/v1", "OPENAI_API_KEY", True),
    ("http://localhost:8000/v1", "OPENAI_API_KEY", True),
    ("http://[::1]:8000/v1", "OPENAI_API_KEY", True),
    ("http://10.1.2.3:8000/v1", "OPENAI_API_KEY", False),
    ("http://127.0.0.1.nip.io:8000/v1", "OPENAI_API_KEY", False),
    ("http://10.1.2.3:8000/v1", "", True),  # --api-key-env '': no key, nothing to protect
    ("http://10.1.2.3:8000/v1?key=abc", "", False),  # a credential in the URL counts too
    ("ftp://api.example.com/v1", "", False),
])
def test_a_key_goes_only_over_https_or_to_loopback(monkeypatch, url, env, allowed):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    profile = profile_for_model("m", "openai", url, env)
    if allowed:
        assert checked_key(profile) == (KEY if env else None)
        build_teacher(profile)  # builds without sending anything
    else:
        with pytest.raises(ConfigError, match="api.base_url") as err:
            checked_key(profile)
        assert KEY not in str(err.value) and "abc" not in str(err.value)


@pytest.mark.parametrize("key", [f"{KEY}\n", f" {KEY}", "sk-a b", "sk-\x07"])
def test_a_key_a_header_cannot_carry_is_refused_without_showing_it(monkeypatch, key):
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY holds whitespace or control characters") as err:
        checked_key(profile_for_model("m", "openai", "https://api.example.com/v1"))
    assert key.strip() not in str(err.value)


@pytest.mark.parametrize(("url", "shown"), [
    ("https://user:pw@h.example/v1", "https://***@h.example/v1"),
    ("https://token@h.example/v1", "https://***@h.example/v1"),
    ("https://h.example/v1?Key=a&api-version=2024-01", "https://h.example/v1?Key=***&api-version=2024-01"),
    ("https://h.example/v1?access_token=a&x-api-key=b&sig=c", "https://h.example/v1?access_token=***&x-api-key=***&sig=***"),
    ("https://h.example/v1?key=a%2Fb#frag", "https://h.example/v1?key=***#frag"),
    ("https://h.example:99999/v1", "<unparsable URL>"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_url_secrets_cover_the_encoded_and_decoded_forms():
    assert url_secrets("https://h/v1?key=a%2Fb") == ["a%2Fb", "a/b"]


def test_urls_with_credentials_are_redacted_in_manifests_logs_and_errors(tmp_path, problems_file, caplog, log_levels):
    userinfo, query_key = "alice:pw-canary-91", "qk-canary-37"
    with ScriptedServer(faults={1: Fault("status", 503)}) as server:
        url = server.url.replace("http://", f"http://{userinfo}@") + f"?api_key={query_key}&api-version=2024-01"
        result = generate(problems_file, tmp_path / "run", url, "--api-key-env", "", verbose=True)
    assert result.exit_code == 0, result.output
    assert all(r["query"] == f"api_key={query_key}&api-version=2024-01" for r in server.requests)  # still sent
    manifest = (tmp_path / "run" / "manifest.json").read_text()
    assert "http://***@127.0.0.1:" in manifest and "api_key=***&api-version=2024-01" in manifest
    files = [p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()]
    seen = caplog.text + result.output + str(files)
    assert "HTTP Request: POST" in caplog.text and "HTTP 503" in caplog.text
    assert query_key not in seen and "pw-canary-91" not in seen


def test_errors_show_the_redacted_url(problems, caplog):
    with ScriptedServer(faults={1: Fault("status", 404, message="no such model")}) as server:
        url = f"{server.url}?key=qk-canary-52"
        profile = TeacherProfile(name="t", model="m", backend="openai", api=ApiOptions(base_url=url))
        with pytest.raises(RequestFailed, match="no such model") as err:
            build_teacher(profile).generate(problems[:1], SamplingConfig(n=1))
    assert server.requests[0]["query"] == "key=qk-canary-52"
    assert f"{server.url}?key=***: HTTP 404" in str(err.value)
    assert "qk-canary-52" not in str(err.value) + caplog.text


def _records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.INFO]


def test_http_request_lines_are_quiet_by_default_and_do_not_grow_with_requests(tmp_path, problems_file, caplog,
                                                                                log_levels):
    caplog.set_level(logging.INFO)
    counts = []
    for samples in (2, 6):
        caplog.clear()
        with ScriptedServer(ignore_n=True, faults={3: Fault("status", 503), 5: Fault("status", 503)}) as server:
            result = generate(problems_file, tmp_path / f"run{samples}", server.url, "--api-key-env", "",
                              samples=samples)
        assert result.exit_code == 0, result.output
        assert not [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]
        counts.append((server.count, len(_records(caplog))))
    (small_requests, small_lines), (large_requests, large_lines) = counts
    assert large_requests >= 3 * small_requests - 6 and large_lines == small_lines
