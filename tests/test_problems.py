"""Problem sets load by name with exact counts and kinds; malformed input fails with file:line."""

from __future__ import annotations

import json
import logging

import pytest

from distill.errors import RecordError
from distill.jsonl import read_jsonl
from distill.problems import LoadReport, content_id, load_problems

SHIPPED_COUNTS = {"math500": (500, "math"), "aime2024": (30, "math"), "gsm8k": (1319, "math"),
                  "humaneval": (164, "code"), "mbpp": (500, "code"), "mbpp:all": (974, "code")}


@pytest.mark.parametrize("name", list(SHIPPED_COUNTS))
def test_shipped_sets_load_with_exact_counts_and_kinds(name):
    count, kind = SHIPPED_COUNTS[name]
    problems = load_problems(name)
    assert len(problems) == count
    assert {p.kind for p in problems} == {kind}
    assert len({p.id for p in problems}) == count
    assert all(p.answer for p in problems)


def test_code_sets_carry_typed_tests():
    humaneval = load_problems("humaneval")
    assert all(p.tests["type"] == "check" and p.tests["entry_point"] and "def check" in p.tests["code"] for p in humaneval)
    mbpp = load_problems("mbpp")
    assert all(p.tests["type"] == "asserts" and len(p.tests["asserts"]) >= 3 for p in mbpp)
    assert {p.meta["split"] for p in mbpp} == {"test"}


def write_lines(path, lines):
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_broken_json_on_line_3_names_line_3(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [b'{"prompt": "a"}', b'{"prompt": "b"}', b'{"prompt": '])
    with pytest.raises(RecordError, match=r"p\.jsonl:3: invalid JSON"):
        load_problems(path)


@pytest.mark.parametrize(
    "line,message",
    [
        (b'{"answer": "1"}', r"p\.jsonl:2: missing field 'prompt'"),
        (b'{"prompt": 7}', r"p\.jsonl:2: field 'prompt': expected str or list"),
        (b'{"prompt": "q", "kind": "code"}', r"p\.jsonl:2: field 'tests'"),
        (b'{"prompt": "q\xff"}', r"p\.jsonl:2: not UTF-8"),
        (b'[1, 2]', r"p\.jsonl:2: expected a JSON object"),
    ],
)
def test_malformed_rows_name_file_line_and_field(tmp_path, line, message):
    path = write_lines(tmp_path / "p.jsonl", [b'{"prompt": "fine"}', line])
    with pytest.raises(RecordError, match=message):
        load_problems(path)


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(RecordError, match="empty"):
        load_problems(tmp_path / "empty.jsonl")


def test_skip_invalid_counts_and_writes_rejects(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [b'{"prompt": "a"}', b'{"prompt": ', b'{"prompt": 3}', b'{"prompt": "b"}'])
    report = LoadReport()
    problems = load_problems(path, skip_invalid=True, rejects_path=tmp_path / "rejects.jsonl", report=report)
    assert [p.prompt for p in problems] == ["a", "b"]
    rejects = [row["error"] for _, row in read_jsonl(tmp_path / "rejects.jsonl")]
    assert len(rejects) == 2 and ":2:" in rejects[0] and ":3:" in rejects[1]


def test_field_mapping_fills_but_never_overwrites(tmp_path):
    rows = [
        {"question": "What is 2+2?", "answer": "Two plus two.\n#### 4"},
        {"Problem Text": "What is 3+3?", "Final": "6", "problem": "ignored? no: problem fills prompt first"},
        {"prompt": "kept", "question": "not used", "answer": "1", "solution": "s"},
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    problems = load_problems(path, mapping={"answer": "Final"})
    assert problems[0].prompt == "What is 2+2?" and problems[0].answer == "4" and problems[0].solution.endswith("#### 4")
    assert problems[1].prompt.startswith("ignored?") and problems[1].answer == "6"
    assert problems[1].meta["Problem Text"] == "What is 3+3?"
    assert problems[2].prompt == "kept" and problems[2].solution == "s" and problems[2].meta["question"] == "not used"


def test_ids_are_stable_and_duplicates_merge_with_a_warning(tmp_path, caplog):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "What is 1+1?"}\n{"prompt": "What  is 1+1?"}\n{"prompt": "Other"}\n')
    with caplog.at_level(logging.WARNING):
        problems = load_problems(path)
    assert [p.id for p in problems] == [content_id("What is 1+1?"), content_id("Other")]
    assert any("merged" in r.message for r in caplog.records)


def test_csv_and_parquet_and_datasets_dir(tmp_path):
    import datasets

    from distill.jsonl import write_parquet

    (tmp_path / "p.csv").write_text("question,answer\nWhat is 1+1?,2\nWhat is 2+2?,4\n")
    assert [p.answer for p in load_problems(tmp_path / "p.csv")] == ["2", "4"]
    write_parquet(tmp_path / "p.parquet", [{"problem": "x?", "answer": "1"}])
    assert load_problems(tmp_path / "p.parquet")[0].prompt == "x?"
    datasets.Dataset.from_list([{"question": "y?", "answer": 3}]).save_to_disk(str(tmp_path / "ds"))
    assert load_problems(tmp_path / "ds")[0].answer == "3"


def test_unknown_source_and_offline_hub_say_so_in_one_line():
    with pytest.raises(RecordError, match="no such file"):
        load_problems("no_such_set")
    with pytest.raises(RecordError, match="offline") as info:
        load_problems("someone/some-dataset")
    assert "\n" not in str(info.value)
