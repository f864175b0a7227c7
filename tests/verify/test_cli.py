"""`distill verify` in-process: run directories and sample files, the summary, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


@pytest.fixture()
def code_run(tmp_path: Path) -> tuple[Path, Path]:
    problem = {"id": "add", "prompt": "Write add(a, b).", "kind": "code",
               "tests": {"type": "asserts", "asserts": ["assert add(1, 2) == 3"], "setup": "", "entry_point": "add"}}
    problems = tmp_path / "code_problems.jsonl"
    write_jsonl(problems, [problem])
    samples = tmp_path / "code_samples.jsonl"
    write_jsonl(samples, [{"problem_id": "add", "sample_index": i, "reasoning": "",
                           "content": f"```python\ndef add(a, b):\n    return a + b + {i}\n```"} for i in range(2)])
    return problems, samples


def _without_bwrap(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return {**os.environ, "PATH": str(bin_dir)}


def test_verify_refuses_code_without_bubblewrap_in_one_line(code_run: tuple[Path, Path], tmp_path: Path) -> None:
    problems, samples = code_run
    proc = subprocess.run([sys.executable, "-m", "distill", "verify", str(samples), "--problems", str(problems),
                           "--workers", "1"], capture_output=True, text=True, env=_without_bwrap(tmp_path),
                          cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "bubblewrap (bwrap) is not installed" in errors[0] and "apt-get install bubblewrap" in errors[0]
    assert "--unsafe-no-sandbox" in errors[0]


def test_verify_with_the_unsafe_flag_runs_and_records_it(code_run: tuple[Path, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from distill.verify import selftest

    problems, samples = code_run
    monkeypatch.setenv("PATH", _without_bwrap(tmp_path)["PATH"])
    monkeypatch.setattr(selftest, "_CHECKED", {})
    out = tmp_path / "verified.jsonl"
    result = CliRunner().invoke(app, ["verify", str(samples), "--problems", str(problems), "--out", str(out),
                                      "--workers", "1", "--unsafe-no-sandbox"])
    assert result.exit_code == 0, result.output
    rows = [row for _, row in read_jsonl(out)]
    assert [r["correct"] for r in rows] == [True, False]
    assert all(r["details"]["sandbox"] == "none" and r["details"]["unsafe_no_sandbox"] is True for r in rows)
    assert "2 code samples ran WITHOUT a sandbox" in result.output
    # The filter stage carries it into funnel.json and the dataset card.
    from distill.filters import filter_run

    funnel = filter_run(out, tmp_path / "corpus", problems=str(problems))
    assert funnel["unsafe_no_sandbox"] == 2
    assert json.loads((tmp_path / "corpus" / "funnel.json").read_text())["unsafe_no_sandbox"] == 2
    assert "2 code samples were verified WITHOUT a sandbox" in (tmp_path / "corpus" / "README.md").read_text()


def test_the_opt_in_is_a_config_key_of_run_and_reinforce_recipes(tmp_path: Path) -> None:
    from distill.pipeline import load_recipe
    from distill.reinforce.recipe import load_grpo_recipe

    repo = Path(__file__).resolve().parents[2]
    run = load_recipe("quickstart", settings=["verify.unsafe_no_sandbox=true"])
    assert run.verify.unsafe_no_sandbox is True and load_recipe("quickstart").verify.unsafe_no_sandbox is False
    grpo = load_grpo_recipe(repo / "students" / "rl" / "r1.yaml", settings=["rewards.unsafe_no_sandbox=true"])
    assert grpo.rewards.unsafe_no_sandbox is True


def test_eval_refuses_code_before_sampling(tmp_path: Path, tiny_model_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from distill.evaluate.run import evaluate
    from distill.verify import SandboxUnavailable, selftest

    monkeypatch.setenv("PATH", _without_bwrap(tmp_path)["PATH"])
    monkeypatch.setattr(selftest, "_CHECKED", {})
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        evaluate(model=str(tiny_model_dir), benches=["humaneval"], k=1, limit=2, out_dir=tmp_path / "eval")
    assert not (tmp_path / "eval" / "humaneval" / "run").exists()  # nothing was sampled
