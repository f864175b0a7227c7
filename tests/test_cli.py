"""The command line: every stage of ARCHITECTURE.md is there, and bad input ends in one line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from distill.cli import app

runner = CliRunner()
DESIGN_COMMANDS = ["problems", "import", "toy", "generate", "verify", "filter", "train", "eval", "compare",
                   "export", "reinforce", "report", "run"]


def test_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in DESIGN_COMMANDS:
        assert f" {name} " in result.output, name


def test_problems_show_math500():
    result = runner.invoke(app, ["problems", "show", "math500"])
    assert result.exit_code == 0, result.output
    assert "500 problems (500 math)" in result.output


def test_broken_line_3_fails_naming_line_3(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": \n')
    done = subprocess.run([sys.executable, "-c", "from distill.cli import main; main()", "problems", "show", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {path}:3: invalid JSON")


def test_toy_problems_and_model(tmp_path):
    out = tmp_path / "toy.jsonl"
    result = runner.invoke(app, ["toy", "problems", "--n", "5", "--seed", "2", "--out", str(out), "--gold"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and all(r["gold"].startswith("<think>\n") for r in rows)
    result = runner.invoke(app, ["toy", "model", "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "model.safetensors").exists()
