"""Records round-trip through JSONL, Parquet and `datasets`, and bad input names file, line and field."""

from __future__ import annotations

import json

import pytest

from distill.errors import RecordError
from distill.jsonl import read_jsonl, read_parquet, write_jsonl, write_parquet
from distill.records import CorpusRow, Problem, Sample, from_dict, to_dict

PROBLEMS = [
    Problem(id="p1", prompt="What is 1+1?", answer="2", kind="math", source="t", meta={"level": 1}),
    Problem(id="p2", prompt=[{"role": "user", "content": "Write f."}], answer="def f(): pass", kind="code",
            tests={"type": "asserts", "asserts": ["assert f() is None"]}),
    Problem(id="p3", prompt="Pick.", answer="B", kind="choice", choices=["x", "y"]),
]
SAMPLES = [
    Sample(problem_id="p1", sample_index=0, reasoning="1+1=2", content="\\boxed{2}", finish_reason="stop",
           sampling={"temperature": 0.6}, completion_tokens=7, correct=True, reason=None),
    Sample(problem_id="p1", sample_index=1, reasoning="hmm", content="", finish_reason="length", think_closed=False),
]
ROWS = [CorpusRow(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>\nr\n</think>\n\na"}],
                  problem_id="p1", source="t", teacher="tiny", prompt_tokens=3, completion_tokens=9)]


@pytest.mark.parametrize("cls,records", [(Problem, PROBLEMS), (Sample, SAMPLES), (CorpusRow, ROWS)])
def test_jsonl_and_parquet_round_trip(tmp_path, cls, records):
    write_jsonl(tmp_path / "r.jsonl", records)
    back = [from_dict(cls, row) for _, row in read_jsonl(tmp_path / "r.jsonl")]
    assert back == records
    write_parquet(tmp_path / "r.parquet", records)
    back = [from_dict(cls, {k: v for k, v in row.items() if v is not None or k in to_dict(records[0])})
            for _, row in read_parquet(tmp_path / "r.parquet")]
    assert back == records


def test_corpus_loads_with_datasets(tmp_path):
    import datasets

    write_jsonl(tmp_path / "corpus.jsonl", ROWS)
    loaded = datasets.load_dataset("json", data_files=str(tmp_path / "corpus.jsonl"), split="train")
    assert [from_dict(CorpusRow, row) for row in loaded] == ROWS


def test_validation_names_file_line_and_field():
    with pytest.raises(RecordError, match=r"x\.jsonl:4: field 'sample_index': expected int, got str"):
        from_dict(Sample, {"problem_id": "p", "sample_index": "0", "reasoning": "", "content": ""}, where="x.jsonl:4")
    with pytest.raises(RecordError, match=r"x\.jsonl:2: missing field 'reasoning'"):
        from_dict(Sample, {"problem_id": "p", "sample_index": 0, "content": ""}, where="x.jsonl:2")
    with pytest.raises(RecordError, match=r"field 'kind': expected one of"):
        from_dict(Problem, {"id": "p", "prompt": "q", "kind": "poetry"}, where="x.jsonl:1")
    with pytest.raises(RecordError, match=r"field 'tests': a code problem needs typed tests"):
        from_dict(Problem, {"id": "p", "prompt": "q", "kind": "code"}, where="x.jsonl:1")
    with pytest.raises(RecordError, match=r"unknown field 'promt'"):
        from_dict(Problem, {"id": "p", "promt": "q"}, where="x.jsonl:1")


def test_reading_never_changes_the_file_and_a_torn_last_line_is_an_error_naming_it(tmp_path):
    path = tmp_path / "shard.jsonl"
    write_jsonl(path, SAMPLES)
    with path.open("ab") as handle:
        handle.write(b'{"problem_id": "p2", "sample_in')
    before = path.read_bytes()
    lines = before.count(b"\n") + 1
    with pytest.raises(RecordError, match=rf"shard.jsonl:{lines}: invalid JSON.*ends in the middle of a record"):
        list(read_jsonl(path))
    assert path.read_bytes() == before
    # A file another process is appending to: its incomplete last line is skipped, nothing else.
    assert len(list(read_jsonl(path, torn_tail="skip"))) == len(SAMPLES)
    assert path.read_bytes() == before


def test_a_last_line_without_its_newline_is_a_record(tmp_path):
    path = tmp_path / "joined.jsonl"
    path.write_text("\n".join(json.dumps(to_dict(s)) for s in SAMPLES), encoding="utf-8")  # no final newline
    before = path.read_bytes()
    assert [row["problem_id"] for _, row in read_jsonl(path)] == [s.problem_id for s in SAMPLES]
    assert path.read_bytes() == before
