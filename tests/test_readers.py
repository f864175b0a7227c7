"""Readers are read-only: every command that reads samples, problems, corpora or evaluations leaves its input
byte-identical, and a last line without a newline (what `"\\n".join(...)` writes) is a record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.records import to_dict
from distill.toy.problems import generate
from distill.train.data import read_corpus


def joined(path: Path, rows: list[dict]) -> Path:
    """A JSONL file as `"\\n".join(...)` writes it: no newline after the last record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def world(tmp_path: Path) -> dict[str, Path]:
    pairs = generate(5, seed=3)
    problems = joined(tmp_path / "problems.jsonl", [to_dict(p) for p, _ in pairs])
    samples = []
    for p, gold in pairs:
        reasoning, _, content = gold.partition("</think>")
        samples.append({"problem_id": p.id, "sample_index": 0, "reasoning": reasoning.replace("<think>", ""),
                        "content": content, "finish_reason": "stop", "think_closed": True})
    samples_file = joined(tmp_path / "samples.jsonl", samples)
    corpus = joined(tmp_path / "corpus" / "corpus.jsonl", [
        {"messages": [{"role": "user", "content": p.prompt}, {"role": "assistant", "content": gold}], "problem_id": p.id}
        for p, gold in pairs])
    traces = joined(tmp_path / "traces.jsonl", [
        {"problem": p.prompt, "answer": p.answer, "generations": [gold]} for p, gold in pairs])
    return {"problems": problems, "samples": samples_file, "corpus": corpus, "traces": traces, "tmp": tmp_path}


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_verify_reads_every_record_and_leaves_the_file_alone(world):
    before = {name: world[name].read_bytes() for name in ("samples", "problems")}
    output = run("verify", str(world["samples"]), "--problems", str(world["problems"]), "--workers", "1")
    assert "5 samples: 5 correct" in output
    assert {name: world[name].read_bytes() for name in ("samples", "problems")} == before


def test_filter_import_problems_and_train_data_leave_their_inputs_alone(world):
    inputs = {name: world[name].read_bytes() for name in ("problems", "samples", "corpus", "traces")}
    output = run("filter", str(world["samples"]), "--problems", str(world["problems"]), "--out",
                 str(world["tmp"] / "out"), "--set", "decontamination.enabled=false", "--set", "correctness.enabled=false")
    assert output.startswith("5 samples in")
    assert "5 samples of 5 problems" in run("import", str(world["traces"]), "--out", str(world["tmp"] / "imported"))
    assert "(5 math)" in run("problems", "show", str(world["problems"]))
    assert len(read_corpus(world["tmp"] / "corpus")) == 5
    assert {name: world[name].read_bytes() for name in inputs} == inputs


def test_report_and_evaluation_results_are_only_read(world, tmp_path):
    run("filter", str(world["samples"]), "--problems", str(world["problems"]), "--out", str(tmp_path / "c"),
        "--set", "decontamination.enabled=false")
    corpus_dir = tmp_path / "c"
    for name in ("corpus.jsonl", "rejected.jsonl"):
        data = (corpus_dir / name).read_bytes()
        (corpus_dir / name).write_bytes(data.rstrip(b"\n"))
    before = {p.name: p.read_bytes() for p in corpus_dir.iterdir()}
    run("report", str(corpus_dir), "--out", str(tmp_path / "report.html"))
    assert {p.name: p.read_bytes() for p in corpus_dir.iterdir()} == before
