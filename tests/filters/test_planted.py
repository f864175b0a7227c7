"""The filters on planted defects: each defect lands in rejected.jsonl under the right filter, every
clean sample is in corpus.jsonl, and the funnel adds up."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from planted_filters import PLANTED_OVERRIDES

from distill.filters import filter_run, load_filter_config
from distill.text import assistant_text


@pytest.fixture(scope="module")
def planted_out(planted_run, tmp_path_factory):
    run, labels = planted_run
    out = tmp_path_factory.mktemp("planted_out")
    funnel = filter_run(run, out, config=load_filter_config(None, PLANTED_OVERRIDES))
    return out, labels, funnel


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_defect_rejected_by_its_filter(planted_out):
    out, labels, _ = planted_out
    rejected = {(r["problem_id"], r["sample_index"]): r for r in _read(out / "rejected.jsonl")}
    wrong = []
    for sample, expected in labels:
        if expected is None:
            continue
        got = rejected.get((sample["problem_id"], sample["sample_index"]))
        if got is None or got["filter"] != expected:
            wrong.append((expected, got and got["filter"], got and got["filter_reason"], sample["reasoning"][:60]))
    assert not wrong
    per_kind = Counter(label for _, label in labels if label)
    assert min(per_kind.values()) >= 5, per_kind
    assert len(per_kind) == 11


def test_every_clean_sample_in_corpus(planted_out):
    out, labels, _ = planted_out
    corpus = _read(out / "corpus.jsonl")
    texts = {(row["problem_id"], row["messages"][-1]["content"]) for row in corpus}
    clean = [s for s, label in labels if label is None]
    missing = [s["problem_id"] for s in clean
               if (s["problem_id"], assistant_text(s["reasoning"], s["content"])) not in texts]
    assert not missing
    assert len(corpus) == len(clean)
    rejected = _read(out / "rejected.jsonl")
    assert len(rejected) + len(corpus) == len(labels)


def test_funnel_adds_up(planted_out):
    out, labels, funnel = planted_out
    saved = json.loads((out / "funnel.json").read_text())
    assert saved["entered"] == len(labels)
    blocks = [saved, *saved["by_kind"].values(), *saved["by_source"].values()]
    for block in blocks:
        assert block["entered"] == sum(block["removed"].values()) + block["remaining"]
    assert sum(b["entered"] for b in saved["by_kind"].values()) == saved["entered"]
    assert sum(b["entered"] for b in saved["by_source"].values()) == saved["entered"]
    expected = Counter(label for _, label in labels if label)
    assert {k: v for k, v in saved["removed"].items() if v} == dict(expected)
    assert saved["finish_reasons"]["length"] >= 4


def test_corpus_rows_are_trl_conversational(planted_out):
    out, _, _ = planted_out
    row = _read(out / "corpus.jsonl")[0]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    assistant = row["messages"][-1]["content"]
    assert assistant.startswith("<think>\n") and "\n</think>\n\n" in assistant
    assert row["messages"][0]["content"].endswith("\\boxed{}.")
    assert row["pass_rate"] == 1.0 and row["teacher"] == "planted"


def test_corpus_loads_with_datasets_and_parquet_matches(planted_out):
    import datasets
    import pyarrow.parquet as pq

    out, _, _ = planted_out
    ds = datasets.load_dataset("json", data_files=str(out / "corpus.jsonl"), split="train")
    table = pq.read_table(out / "corpus.parquet")
    assert len(ds) == table.num_rows == len(_read(out / "corpus.jsonl"))
    assert ds[0]["messages"] == table.to_pylist()[0]["messages"]


def test_dataset_card_front_matter(planted_out):
    import yaml

    out, labels, _ = planted_out
    text = (out / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert {"synthetic", "reasoning"} <= set(meta["tags"])
    assert meta["license"] and meta["language"] == ["en"]
    assert "toy" in meta["source_datasets"]
    assert "planted-model" in text and '"temperature": 0.6' in text
    assert "128 permutations" in text and "threshold 0.8" in text and "8-gram" in text
