"""`distill verify` in-process: run directories and sample files, the summary, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import RecordError
from distill.jsonl import read_jsonl, write_jsonl
from distill.records import to_dict
from distill.toy.problems import generate


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    pairs = generate(6, seed=3)
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, (to_dict(p) for p, _ in pairs))
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    rows = []
    for p, gold in pairs:
        reasoning, _, content = gold.partition("</think>")
        rows.append({"problem_id": p.id, "sample_index": 0, "reasoning": reasoning, "content": content})
        rows.append({"problem_id": p.id, "sample_index": 1, "reasoning": "", "content": "no idea"})
    write_jsonl(run / "samples" / "shard-0.jsonl", rows)
    (run / "manifest.json").write_text(json.dumps({"problems": {"source": str(problems)},
                                                   "teacher": {"answer_format": "after_think"}}))
    return run


def test_verify_run_dir_uses_the_manifest(run_dir: Path) -> None:
    result = CliRunner().invoke(app, ["verify", str(run_dir), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "12 samples: 6 correct, 6 wrong, 0 not judged" in result.output
    assert "no_answer" in result.output
    rows = [row for _, row in read_jsonl(run_dir / "verified.jsonl")]
    assert [r["correct"] for r in rows] == [True, False] * 6
    assert {r["reason"] for r in rows} == {None, "no_answer"}
    assert all(r["verifier"] == "math" for r in rows)


def test_verify_samples_file_with_problems_and_out(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "v.jsonl"
    problems = json.loads((run_dir / "manifest.json").read_text())["problems"]["source"]
    result = CliRunner().invoke(app, ["verify", str(run_dir / "samples" / "shard-0.jsonl"), "--problems", problems,
                                      "--out", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert sum(1 for _ in read_jsonl(out)) == 12


def test_unknown_problem_id_names_file_and_line(run_dir: Path) -> None:
    shard = run_dir / "samples" / "shard-0.jsonl"
    with shard.open("a") as handle:
        handle.write(json.dumps({"problem_id": "ghost", "sample_index": 0, "reasoning": "", "content": ""}) + "\n")
    result = CliRunner().invoke(app, ["verify", str(run_dir), "--workers", "1"])
    assert isinstance(result.exception, RecordError)
    assert f"{shard}:13" in str(result.exception) and "ghost" in str(result.exception)
    assert not (run_dir / "verified.jsonl").exists()


def test_samples_file_needs_problems(run_dir: Path) -> None:
    result = CliRunner().invoke(app, ["verify", str(run_dir / "samples" / "shard-0.jsonl")])
    assert result.exception is not None and "--problems" in str(result.exception)
