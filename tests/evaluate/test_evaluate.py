"""End-to-end evaluations: a scripted server with known answers (exact numbers), a tiny random model
(the saved results add up to the summary), resume, and the `eval` and `compare` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import DistillError
from distill.evaluate.run import evaluate, read_results
from distill.jsonl import write_jsonl
from distill.sampling import read_samples
from distill.sampling.profile import ApiOptions, TeacherProfile

torch.set_num_threads(1)


@pytest.fixture
def scripted_problems(scripted_server, tmp_path: Path) -> Path:
    path = tmp_path / "scripted.jsonl"
    write_jsonl(path, [{"id": tag.lower(), "prompt": f"Problem {tag}: what is the value?", "answer": ref}
                       for tag, ref in scripted_server.references.items()])
    return path


def scripted_profile(base_url: str) -> TeacherProfile:
    return TeacherProfile(name="scripted", model="scripted", backend="openai", open_think=False,
                          api=ApiOptions(base_url=base_url, concurrency=4, max_retries=3, retry_base_delay=0.01))


def test_scripted_server_gives_the_exact_numbers(scripted_server, scripted_problems: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    summary = evaluate(profile=scripted_profile(scripted_server.url), benches=[str(scripted_problems)], k=4,
                       out_dir=out, max_new_tokens=64, workers=1)
    result = summary["benchmarks"]["scripted"]
    # Per problem correct: p1 3/4, p2 1/4, p3 0/4, p4 4/4 (see conftest.SCRIPT).
    assert result["pass@1"] == pytest.approx((3 + 1 + 0 + 4) / 16)
    assert result["pass@k"]["1"] == pytest.approx(0.5)
    assert result["pass@k"]["2"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)  # p2: 1 - C(3,2)/C(4,2)
    assert result["pass@k"]["4"] == pytest.approx(0.75)
    assert result["cons@k"] == pytest.approx(0.5)  # p1 (3 equivalent forms) and p4 win their votes
    assert result["truncation_rate"] == 0.0  # the scripted server always says "stop"
    assert (result["problems"], result["samples"], result["k"]) == (4, 16, 4)
    problems, samples = read_results(out, "scripted")
    by_id = {p["problem_id"]: p for p in problems}
    assert {pid: p["correct"] for pid, p in by_id.items()} == {"p1": 3, "p2": 1, "p3": 0, "p4": 4}
    assert by_id["p1"]["cons_correct"] is True and by_id["p1"]["cons_votes"] == 3
    assert by_id["p2"]["cons_correct"] is False and by_id["p2"]["cons_answer"] == "13"
    assert [s["reason"] for s in samples if s["problem_id"] == "p2"] == [None, "wrong_answer", "wrong_answer", "no_answer"]
    assert sum(s["correct"] is True for s in samples) / len(samples) == result["pass@1"]
    # One request per problem (n=4), plus the two faulted ones that were retried.
    assert scripted_server.count == 6
    bodies = [r["body"] for r in scripted_server.requests if r["body"]]
    assert all(b["n"] == 4 and b["temperature"] == 0.6 and b["top_p"] == 0.95 for b in bodies)
    assert all(m["role"] != "system" for b in bodies for m in b["messages"])  # R1: no system prompt
    assert all(b["messages"][-1]["content"].endswith("within \\boxed{}.") for b in bodies)


def test_tiny_model_results_add_up_and_resume(tiny_model_dir: Path, toy_problems_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    summary = evaluate(model=str(tiny_model_dir), benches=[str(toy_problems_file)], k=2, out_dir=out,
                       max_new_tokens=12, limit=3, seed=1)
    result = summary["benchmarks"]["problems"]
    problems, samples = read_results(out, "problems")
    assert len(problems) == 3 and len(samples) == 6
    assert all(p["n"] == 2 for p in problems)
    assert sum(p["correct"] for p in problems) == sum(s["correct"] is True for s in samples)
    assert result["pass@1"] == sum(s["correct"] is True for s in samples) / len(samples)
    assert result["pass@1"] == pytest.approx(sum(p["pass@1"] for p in problems) / len(problems))
    assert result["truncation_rate"] == sum(s["finish_reason"] == "length" for s in samples) / 6
    assert result["mean_completion_tokens"] == pytest.approx(sum(s["completion_tokens"] for s in samples) / 6)
    assert all(s["completion_tokens"] <= 12 for s in samples)
    assert summary["sampling"]["temperature"] == 0.6 and summary["sampling"]["top_p"] == 0.95
    assert json.loads((out / "summary.json").read_text()) == summary
    # A second run resumes: nothing is sampled again and the numbers are the same.
    before = sorted((s.problem_id, s.sample_index, s.content) for s in read_samples(out / "problems" / "run"))
    again = evaluate(model=str(tiny_model_dir), benches=[str(toy_problems_file)], k=2, out_dir=out,
                     max_new_tokens=12, limit=3, seed=1)
    after = sorted((s.problem_id, s.sample_index, s.content) for s in read_samples(out / "problems" / "run"))
    assert after == before
    assert again["benchmarks"]["problems"]["pass@1"] == result["pass@1"]


def test_bad_arguments_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(DistillError, match="exactly one of --model"):
        evaluate(benches=["gsm8k"], out_dir=tmp_path)
    with pytest.raises(DistillError, match="at least one benchmark"):
        evaluate(model="m", benches=[], out_dir=tmp_path)


def test_eval_and_compare_commands(tiny_model_dir: Path, toy_problems_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    for name, seed in (("a", "1"), ("b", "2")):
        result = runner.invoke(app, ["eval", "--model", str(tiny_model_dir), "--bench", str(toy_problems_file),
                                     "--k", "4", "--out", str(tmp_path / name), "--max-new-tokens", "8",
                                     "--limit", "2", "--seed", seed, "--label", f"tiny-{name}"])
        assert result.exit_code == 0, result.output
        assert "problems: pass@1" in result.output
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        _, samples = read_results(tmp_path / name, "problems")
        assert len(samples) == 8
        assert summary["benchmarks"]["problems"]["pass@1"] == sum(s["correct"] is True for s in samples) / 8
    table = tmp_path / "report" / "table.md"
    result = runner.invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(table)])
    assert result.exit_code == 0, result.output
    assert "tiny-a" in result.output and "tiny-b" in result.output
    lines = table.read_text().splitlines()
    assert lines[0].startswith("| model | k | problems pass@1 | problems cons@k |")
    assert [line.split(" | ")[0] for line in lines[2:4]] == ["| tiny-a", "| tiny-b"]
    assert "| problems | tiny-a |" in table.read_text()  # the details table follows
    assert (tmp_path / "report" / "pass_at_k.png").exists()
    assert (tmp_path / "report" / "accuracy_vs_length.png").exists()


def test_script_matches_the_references(scripted_server) -> None:
    """Guard the fixture itself: the known-correct counts the exact test relies on."""
    from distill.verify import answers_equal

    refs = scripted_server.references
    counts = {tag: sum(a is not None and answers_equal(a, refs[tag]) for a in script)
              for tag, script in scripted_server.script.items()}
    assert counts == {"P1": 3, "P2": 1, "P3": 0, "P4": 4}


def test_an_incomplete_run_is_refused_and_resumes(scripted_server, scripted_problems: Path, tmp_path: Path) -> None:
    from distill.sampling import Budget

    out = tmp_path / "eval"
    profile = scripted_profile(scripted_server.url)
    with pytest.raises(DistillError, match="of 4 samples .* run the same command again to resume"):
        evaluate(profile=profile, benches=[str(scripted_problems)], k=4, out_dir=out, budget=Budget(max_samples=5))
    assert not (out / "summary.json").exists()
    kept = {s.key for s in read_samples(out / "scripted" / "run")}
    assert 5 <= len(kept) < 16
    summary = evaluate(profile=profile, benches=[str(scripted_problems)], k=4, out_dir=out)
    keys = [s.key for s in read_samples(out / "scripted" / "run")]
    assert len(keys) == len(set(keys)) == 16 and kept <= set(keys)
    _, samples = read_results(out, "scripted")
    assert summary["benchmarks"]["scripted"]["pass@1"] == sum(s["correct"] is True for s in samples) / 16


def test_resuming_with_other_settings_is_refused(scripted_server, scripted_problems: Path, tmp_path: Path) -> None:
    from distill.errors import ConfigError

    out = tmp_path / "eval"
    profile = scripted_profile(scripted_server.url)
    evaluate(profile=profile, benches=[str(scripted_problems)], k=2, out_dir=out, workers=1)
    with pytest.raises(ConfigError, match="refusing to resume with a different sampling config"):
        evaluate(profile=profile, benches=[str(scripted_problems)], k=2, out_dir=out, temperature=1.0, workers=1)
    # More samples per problem extend the same run: k=4 adds indices 2 and 3 only.
    summary = evaluate(profile=profile, benches=[str(scripted_problems)], k=4, out_dir=out, workers=1)
    assert summary["benchmarks"]["scripted"]["samples"] == 16
    assert sorted(s.sample_index for s in read_samples(out / "scripted" / "run") if s.problem_id == "p1") == [0, 1, 2, 3]


def test_protocol_defaults_come_from_the_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    from distill.evaluate.run import build_profile, sampling_config

    profile = build_profile(model=str(tiny_model_dir))
    config = sampling_config(profile, k=8)
    assert (config.n, config.temperature, config.top_p, config.max_new_tokens) == (8, 0.6, 0.95, 512)
    assert profile.system_prompt is None and profile.open_think is True
    # Without a stated maximum, R1's long default is used, capped at the model's context length.
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    assert sampling_config(build_profile(model=str(bare)), k=1).max_new_tokens == 4096
    assert sampling_config(build_profile(model=str(bare)), k=1, max_new_tokens=64).max_new_tokens == 64
