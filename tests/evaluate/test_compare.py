"""The comparison table and plots over evaluation directories (hand-written summaries)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.evaluate.compare import compare, details, table
from distill.evaluate.plots import plot_all


def fake_eval(root: Path, model: str, results: dict[str, tuple[float, float, float | None]]) -> Path:
    """An evaluation directory with a summary and per-sample rows (length grows with index)."""
    root.mkdir(parents=True)
    benchmarks = {}
    for bench, (pass1, se, cons) in results.items():
        benchmarks[bench] = {"pass@1": pass1, "pass@1_se": se, "cons@k": cons, "dir": bench,
                             "pass@k": {"1": pass1, "2": min(1.0, pass1 * 1.5), "4": min(1.0, pass1 * 2)}}
        (root / bench).mkdir()
        rows = [{"problem_id": f"p{i}", "sample_index": 0, "completion_tokens": 10 * (i + 1), "correct": i % 2 == 0}
                for i in range(8)]
        (root / bench / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "summary.json").write_text(json.dumps({"model": model, "k": 4, "benchmarks": benchmarks}))
    return root


def test_table_has_a_row_per_model_and_cells_per_benchmark(tmp_path: Path) -> None:
    a = fake_eval(tmp_path / "a", "teacher", {"math500": (0.5, 0.05, 0.6), "humaneval": (0.25, 0.1, None)})
    b = fake_eval(tmp_path / "b", "student", {"math500": (0.125, 0.02, 0.2)})
    headers, rows = table([a, b])
    assert headers == ["model", "k", "math500 pass@1", "math500 cons@k", "humaneval pass@1", "humaneval cons@k"]
    assert rows == [["teacher", "4", "50.0 ± 5.0", "60.0", "25.0 ± 10.0", "-"],
                    ["student", "4", "12.5 ± 2.0", "20.0", "-", "-"]]
    text = compare([a, b])
    assert text.splitlines()[2] == "| teacher | 4 | 50.0 ± 5.0 | 60.0 | 25.0 ± 10.0 | - |"
    rows = details([a, b]).splitlines()
    assert rows[0] == ("| benchmark | model | pass@1 ± SE | 95 % CI | pass@1 | pass@2 | pass@4 | cons@k | mean tokens "
                       "| truncated |")
    assert rows[2:] == ["| math500 | teacher | 50.0 ± 5.0 | - | 50.0 | 75.0 | 100.0 | 60.0 | - | - |",
                        "| math500 | student | 12.5 ± 2.0 | - | 12.5 | 18.8 | 25.0 | 20.0 | - | - |",
                        "| humaneval | teacher | 25.0 ± 10.0 | - | 25.0 | 37.5 | 50.0 | - | - | - |"]


def test_compare_refuses_a_directory_without_a_summary(tmp_path: Path) -> None:
    with pytest.raises(DistillError, match="no summary.json"):
        compare([tmp_path])
    (tmp_path / "summary.json").write_text("{")
    with pytest.raises(DistillError, match="summary.json: invalid JSON"):
        compare([tmp_path])


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    a = fake_eval(tmp_path / "a", "teacher", {"math500": (0.5, 0.05, 0.6), "gsm8k": (0.7, 0.05, 0.8)})
    b = fake_eval(tmp_path / "b", "student", {"math500": (0.125, 0.02, 0.2)})
    written = plot_all([a, b], tmp_path / "plots")
    assert [p.name for p in written] == ["pass_at_k.png", "accuracy_vs_length.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
