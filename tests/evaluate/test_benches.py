"""Benchmark loading: shipped names, and GPQA / LiveCodeBench files in their published column layouts."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from distill.errors import RecordError
from distill.evaluate.benches import bench_name, load_bench

ASSETS = Path(__file__).parent / "assets"


def test_gpqa_rows_become_choice_problems_with_a_seeded_shuffle() -> None:
    problems = load_bench(str(ASSETS / "gpqa_diamond.csv"))
    assert [p.id for p in problems] == ["rec001", "rec002", "rec003"]
    with (ASSETS / "gpqa_diamond.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for problem, row in zip(problems, rows, strict=True):
        assert problem.kind == "choice" and problem.source == "gpqa-diamond"
        assert sorted(problem.choices) == sorted(row[c] for c in ("Correct Answer", "Incorrect Answer 1",
                                                                  "Incorrect Answer 2", "Incorrect Answer 3"))
        letter = problem.answer
        assert problem.choices["ABCD".index(letter)] == row["Correct Answer"]
        assert f"{letter}) {row['Correct Answer']}" in problem.prompt  # the prompt lists the shuffled choices
        assert "Answer: $LETTER" in problem.prompt
    assert [p.answer for p in load_bench(str(ASSETS / "gpqa_diamond.csv"))] == [p.answer for p in problems]
    other = [p.choices for p in load_bench(str(ASSETS / "gpqa_diamond.csv"), seed=1)]
    assert other != [p.choices for p in problems]  # the seed changes the order


def test_gpqa_row_with_an_empty_answer_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "gpqa.csv"
    path.write_text("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\n"
                    "Q?,yes,no,maybe,\n")
    with pytest.raises(RecordError, match=r"gpqa.csv:2: field 'Incorrect Answer 3'"):
        load_bench(str(path))


def test_livecodebench_rows_become_stdio_problems() -> None:
    problems = load_bench(str(ASSETS / "livecodebench.jsonl"))
    # The LeetCode (call-based) problem has no stdin tests and is skipped.
    assert [p.id for p in problems] == ["abc001_a", "1000A"]
    first = problems[0]
    assert first.kind == "code" and first.source == "livecodebench"
    assert first.tests == {"type": "stdio", "cases": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 7\n", "output": "12\n"}]}
    assert "Read two integers" in first.prompt and "```python" in first.prompt
    assert first.meta["platform"] == "atcoder"


def test_livecodebench_bad_tests_and_hub_names_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "lcb.jsonl"
    path.write_text('{"question_id": "x", "question_content": "q", "public_test_cases": "[not json"}\n')
    with pytest.raises(RecordError, match=r"lcb.jsonl:1: field 'public_test_cases': not JSON"):
        load_bench(str(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RecordError, match="gpqa-diamond: the Hugging Face hub is offline"):
        load_bench("gpqa-diamond")


def test_shipped_names_and_plain_files(toy_problems_file: Path) -> None:
    assert len(load_bench("aime2024")) == 30
    toy = load_bench(str(toy_problems_file))
    assert len(toy) == 20 and toy[0].kind == "math"
    assert bench_name(str(toy_problems_file)) == "problems"
    assert bench_name("livecodebench") == "livecodebench"


def test_loaded_gpqa_and_livecodebench_problems_verify() -> None:
    """The mapped problems are what the choice and code verifiers expect."""
    from distill.records import Sample
    from distill.verify import verify_sample

    gpqa = load_bench(str(ASSETS / "gpqa_diamond.csv"))[0]
    wrong = "ABCD"[("ABCD".index(gpqa.answer) + 1) % 4]
    assert verify_sample(gpqa, Sample(gpqa.id, 0, "hmm", f"Answer: {gpqa.answer}")).correct is True
    assert verify_sample(gpqa, Sample(gpqa.id, 1, "hmm", f"Answer: {wrong}")).correct is False
    lcb = load_bench(str(ASSETS / "livecodebench.jsonl"))[0]
    right = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    wrong_code = "```python\na, b = map(int, input().split())\nprint(a - b)\n```"
    assert verify_sample(lcb, Sample(lcb.id, 0, "hmm", right)).correct is True
    assert verify_sample(lcb, Sample(lcb.id, 1, "hmm", wrong_code)).correct is False
