"""Teacher logprobs at sampling: the transformers backend's recorder matches a direct forward pass, the sidecar
round-trips through the run directory and resumes exactly once after kill -9 between a side record and its
line, and an OpenAI-compatible server must send token ids (strings or no logprobs are refused in one line)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from distill.errors import DistillError
from distill.jsonl import write_jsonl
from distill.logprobs import SidecarReader, encode
from distill.records import to_dict
from distill.rundir import RunDir, read_samples
from distill.sampling import SamplingConfig, generate_run, resolve_teacher
from distill.sampling.profile import ApiOptions, TeacherProfile
from distill.testing.scripted_server import PROMPT_IDS, ScriptedServer
from distill.toy.problems import generate

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("fault_runner.py")
torch.set_num_threads(1)


def toy(n: int, seed: int = 3) -> list:
    return [p for p, _ in generate(n, seed=seed, difficulty=(1, 1))]


def records(run_dir: Path) -> dict:
    """Every sample's stored logprob record, by key, read through the sidecar's memory map."""
    run = RunDir(run_dir)
    reader = SidecarReader(run.side_path((0, 1), "logprobs"))
    out = {}
    for sample in read_samples(run_dir):
        ref = sample.side["logprobs"]
        out[sample.key] = (sample, reader.read(ref["offset"], ref["length"]))
    return out


def test_stored_logprobs_match_a_direct_forward_pass_of_the_teacher(tmp_path):
    profile = resolve_teacher("tiny", settings=["local.batch_size=3"])
    config = profile.sampling.replace(n=2, max_new_tokens=24, seed=4, logprobs=5)
    summary = generate_run(toy(3), profile, config, tmp_path / "run", progress=False)
    assert summary["complete"]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(profile.engine_model(), dtype=torch.float32).eval()
    stored = records(tmp_path / "run")
    assert len(stored) == 6
    for sample, record in stored.values():
        prompt, generated = record.prompt_ids.tolist(), record.token_ids.tolist()
        assert len(generated) == sample.completion_tokens and len(prompt) == sample.prompt_tokens
        with torch.no_grad():
            logits = model(torch.tensor([prompt + generated])).logits[0]
        # The raw distribution (temperature 1, before top-p) at each generated position.
        direct = torch.log_softmax(logits[len(prompt) - 1:-1].float(), dim=-1)
        top = direct.topk(5, dim=-1)
        assert (record.top_ids == top.indices.numpy()).mean() > 0.98  # ties in float16 may swap ranks
        np.testing.assert_allclose(record.top_logprobs.astype(np.float32), top.values.numpy(), atol=2e-3, rtol=2e-3)
        sampled = direct.gather(1, torch.tensor(generated)[:, None]).squeeze(1).numpy()
        np.testing.assert_allclose(record.sampled.astype(np.float32), sampled, atol=2e-3, rtol=2e-3)
        # Sampled at temperature 0.6 / top-p 0.95, every drawn token is among the raw distribution's likely ones.
        assert (sampled > -8).all()


def test_a_record_round_trips_through_the_shard_writer(tmp_path):
    from distill.records import Sample

    run = RunDir(tmp_path / "run")
    writer = run.open_shard((0, 1), sides=("logprobs",))
    rng = np.random.default_rng(0)
    made = {}
    for i in range(3):
        t, k = 5 + i, 4
        arrays = (rng.integers(0, 150_000, t), -rng.random(t), rng.integers(0, 150_000, (t, k)), -rng.random((t, k)),
                  rng.integers(0, 150_000, 7))
        made[i] = arrays
        writer.write(Sample(problem_id=f"p{i}", sample_index=0, reasoning="r", content="c"),
                     {"logprobs": encode(*arrays[:4], prompt_ids=arrays[4])})
    writer.close()
    for (pid, _), (_, record) in records(run.path).items():
        ids, sampled, top_ids, top_lp, prompt = made[int(pid[1:])]
        assert record.token_ids.tolist() == ids.tolist() and record.prompt_ids.tolist() == prompt.tolist()
        assert record.top_ids.tolist() == top_ids.tolist()  # int32 keeps ids above 65,535
        np.testing.assert_allclose(record.top_logprobs, top_lp, atol=1e-3)
        np.testing.assert_allclose(record.sampled, sampled, atol=1e-3)


def test_kill_between_the_side_record_and_its_line_resumes_exactly_once(tmp_path):
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, (to_dict(p) for p in toy(6, seed=11)))
    # `append` is the point after a sample's side record is flushed and before its line is written.
    plans = ["append:1", "append:3", "append:2"]
    job = {"run": str(tmp_path / "run"), "problems": str(problems), "backend": "transformers",
           "model": str(REPO / "teachers" / "tiny"), "samples": 2, "max_new_tokens": 6, "batch_size": 4,
           "logprobs": 3, "plans": plans}
    (tmp_path / "job.json").write_text(json.dumps(job), encoding="utf-8")
    result = subprocess.run([sys.executable, str(RUNNER), str(tmp_path / "job.json")], capture_output=True, text=True,
                            timeout=240, cwd=REPO, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    assert [o["killed"] for o in outcomes] == [True] * len(plans) + [False]
    run = RunDir(tmp_path / "run")
    lines = [json.loads(line) for line in run.shard_path((0, 1)).read_text().splitlines()]
    assert Counter((r["problem_id"], r["sample_index"]) for r in lines) == Counter(
        {(p.id, i): 1 for p in toy(6, seed=11) for i in range(2)})
    stored = records(tmp_path / "run")
    side = run.side_path((0, 1), "logprobs")
    # No byte of the sidecar is unreferenced: each killed record moved to torn/, and the records tile the file.
    spans = sorted((s.side["logprobs"]["offset"], s.side["logprobs"]["length"]) for s, _ in stored.values())
    assert spans[0][0] == 0 and all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:], strict=False))
    assert spans[-1][0] + spans[-1][1] == side.stat().st_size
    assert len([p for p in run.torn_dir.iterdir() if ".logprobs." in p.name]) == len(plans)
    for sample, record in stored.values():
        assert len(record.token_ids) == sample.completion_tokens and record.top_ids.shape == (sample.completion_tokens, 3)


def api_profile(url: str, endpoint: str = "chat") -> TeacherProfile:
    return TeacherProfile(name="api", model="scripted", backend="openai",
                          api=ApiOptions(base_url=url, endpoint=endpoint, concurrency=2, max_retries=1,
                                         retry_base_delay=0.001, retry_max_delay=0.01))


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_a_server_that_returns_token_ids_fills_the_sidecar(tmp_path, endpoint, tiny_model_dir):
    with ScriptedServer(logprobs="ids") as server:
        profile = api_profile(server.url, endpoint)
        if endpoint == "completions":
            import dataclasses

            profile = dataclasses.replace(profile, tokenizer=str(tiny_model_dir))
        generate_run(toy(2), profile, SamplingConfig(n=2, logprobs=3), tmp_path / "run", progress=False)
    body = server.requests[0]["body"]
    assert body["return_tokens_as_token_ids"] is True and body["return_token_ids"] is True
    assert (body["top_logprobs"] if endpoint == "chat" else body["logprobs"]) == 3
    for sample, record in records(tmp_path / "run").values():
        text = sample.reasoning  # the scripted answer, one token per character
        assert record.prompt_ids.tolist() == PROMPT_IDS and sample.completion_tokens == len(record.token_ids)
        assert "".join(chr(i) for i in record.token_ids.tolist()).startswith("<think>\nLet me think")
        assert text and record.top_ids[:, 0].tolist() == record.token_ids.tolist()
        np.testing.assert_allclose(record.top_logprobs[0], [-0.1, -1.1, -2.1], atol=1e-3)


@pytest.mark.parametrize(("mode", "message"), [
    ("strings", "as text, not as a token id"),
    ("none", "returned no logprobs"),
])
def test_a_server_without_token_ids_is_refused_in_one_line(tmp_path, mode, message):
    with ScriptedServer(logprobs=mode) as server:
        problems = tmp_path / "problems.jsonl"
        write_jsonl(problems, (to_dict(p) for p in toy(2)))
        command = [sys.executable, "-m", "distill", "generate", "--problems", str(problems), "--model", "scripted",
                   "--backend", "openai", "--base-url", server.url, "--api-key-env", "", "--logprobs", "4",
                   "--out", str(tmp_path / "run")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    # Nothing half-written: no sample line was stored without its record.
    assert not any(s.side is None for s in read_samples(tmp_path / "run"))


def test_a_server_sending_malformed_logprobs_fails_closed(tmp_path):
    from distill.sampling.backends.openai_logprobs import parse_token_logprobs

    good = {"logprobs": {"content": [{"token": "token_id:5", "logprob": -0.2,
                                      "top_logprobs": [{"token": "token_id:5", "logprob": -0.2},
                                                       {"token": "token_id:6", "logprob": -2.0}]}]}}
    assert parse_token_logprobs(good, "chat", 2).top_ids.tolist() == [[5, 6]]
    bad = json.loads(json.dumps(good))
    for spoil, pattern in [(("logprob", float("nan")), "not a finite number"), (("logprob", 3.0), "not a finite"),
                           (("token", "token_id:-1"), "as text"), (("token", "token_id:99999999999"), "as text")]:
        item = json.loads(json.dumps(good))
        item["logprobs"]["content"][0][spoil[0]] = spoil[1]
        with pytest.raises(DistillError, match=pattern):
            parse_token_logprobs(item, "chat", 2)
    with pytest.raises(DistillError, match="fewer than the 3 asked for"):
        parse_token_logprobs(bad, "chat", 3)
    bad["token_ids"] = [6]
    with pytest.raises(DistillError, match="differ from the choice's token_ids"):
        parse_token_logprobs(bad, "chat", 2)
