"""Training data at scale: the tokenized Arrow cache (hit, and a miss on every key change), weighted mixtures,
`--data` over `data:`, bad `data:` entries, and streaming under an address-space limit smaller than the corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill.errors import ConfigError
from distill.train import datacache
from distill.train.corpora import corpora, mix
from distill.train.data import build_dataset, read_corpus, tokenize_row
from distill.train.datacache import cache_key, training_data
from distill.train.recipe import load_student_recipe
from distill.train.sft import load_tokenizer, materialize_tiny, packing_mode

from .conftest import FAST, REPO, write_corpus

TINY = REPO / "students" / "tiny.yaml"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny base model of students/tiny.yaml (its tokenizer is what the cache keys)."""
    return materialize_tiny(load_student_recipe(TINY), tmp_path_factory.mktemp("base"))


def prepare(settings: list[str], data: Path | None, out: Path, base: Path):
    """`training_data` as train() calls it, for the recipe with `settings`."""
    recipe = load_student_recipe(TINY, [*FAST, *settings])
    tokenizer = load_tokenizer(recipe, str(base))
    return training_data(recipe, tokenizer, corpora(recipe, data), out, packing_mode(recipe))


@pytest.mark.parametrize("policy", ["drop", "truncate"])
def test_the_cached_set_equals_the_in_memory_set_with_two_workers(base: Path, tmp_path: Path, policy: str) -> None:
    corpus = write_corpus(tmp_path / "c", 40, difficulty=(1, 5))
    recipe = load_student_recipe(TINY, FAST)
    tokenizer = load_tokenizer(recipe, str(base))
    lengths = sorted(len(tokenize_row(tokenizer, r["messages"])[0]) for r in read_corpus(corpus))
    limit = lengths[len(lengths) // 2]  # half the rows are over-long
    settings = ["packing=false", f"overlong={policy}", f"max_length={limit}", "dataset_num_proc=2"]
    got = prepare(settings, corpus, tmp_path / "out", base)
    want, report = build_dataset(read_corpus(corpus), tokenizer, limit, policy)
    assert got.report.overlong > 0  # the policy was exercised
    assert got.report.to_dict() == report.to_dict()
    assert got.dataset.to_dict() == want.to_dict()  # same rows, same order, same ids and labels
    assert got.dataset.features == want.features


def test_a_second_run_reuses_the_cache_without_tokenizing(base: Path, tmp_path: Path, monkeypatch) -> None:
    corpus = write_corpus(tmp_path / "c", 16)
    calls = []
    real = datacache.tokenize_batch
    monkeypatch.setattr(datacache, "tokenize_batch", lambda batch, **kw: calls.append(1) or real(batch, **kw))
    first = prepare([], corpus, tmp_path / "out", base)
    assert calls and not first.info["cache_hit"]
    calls.clear()
    second = prepare([], corpus, tmp_path / "out", base)
    assert calls == [] and second.info["cache_hit"]
    assert second.info["cache_key"] == first.info["cache_key"]
    assert second.dataset.to_dict() == first.dataset.to_dict()
    # A shared data_cache serves another OUT too.
    shared = [f"data_cache={tmp_path / 'shared'}"]
    prepare(shared, corpus, tmp_path / "o1", base)
    assert prepare(shared, corpus, tmp_path / "o2", base).info["cache_hit"]


def test_every_input_of_the_rows_changes_the_key(base: Path, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c", 8)
    other = write_corpus(tmp_path / "d", 8, seed=7)

    def key(settings: list[str], data: Path | None = corpus, eos: str | None = None, template: str = "") -> str:
        recipe = load_student_recipe(TINY, [*FAST, *settings])
        tokenizer = load_tokenizer(recipe, str(base))
        if eos:
            tokenizer.eos_token = eos
        tokenizer.chat_template += template
        return cache_key(recipe, tokenizer, corpora(recipe, data), packing_mode(recipe))[0]

    plain = key([])
    assert key([]) == plain  # deterministic
    changed = {
        "max_length": key(["max_length=200"]), "overlong": key(["overlong=truncate"]),
        "packing": key(["packing=false"]), "objective": key(["objective=kd"]), "kd.top_k": None,
        "corpus": key([], other), "tokenizer": key([], eos="<|endoftext|>"),
        "template": key([], template="{# edited #}"),
        "mixture weight": key([f"data=[{{path: {corpus}, weight: 1}}, {{path: {other}, weight: 2}}]"], None),
    }
    changed["kd.top_k"] = key(["objective=kd", "kd.top_k=5"])
    assert changed["kd.top_k"] != changed["objective"]
    assert key([f"data=[{{path: {corpus}, weight: 1}}, {{path: {other}, weight: 1}}]"], None) != changed["mixture weight"]
    assert len(set(changed.values()) | {plain}) == len(changed) + 1, changed
    # Rewriting the corpus (same rows, new bytes at its end) is a miss.
    with (corpus / "corpus.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("\n")
    assert key([]) != plain


def test_mixture_shares_follow_the_weights_deterministically_by_seed() -> None:
    from datasets import Dataset

    sizes, weights = [3000, 500, 1500], [0.2, 0.5, 0.3]
    parts = [Dataset.from_dict({"src": [i] * n, "row": list(range(n))}) for i, n in enumerate(sizes)]
    mixed = mix(parts, weights, seed=3)
    assert len(mixed) == sum(sizes)  # an epoch is as many rows as the corpora hold together
    src = mixed["src"]
    for i, weight in enumerate(weights):
        assert abs(src.count(i) / len(src) - weight) < 0.02  # 5000 draws: binomial sd <= 0.0071
    # A corpus below its share (0) gives its first rows only, in order; one above it (1) repeats its rows.
    rows0 = [r for s, r in zip(src, mixed["row"], strict=True) if s == 0]
    assert rows0 == list(range(len(rows0))) and len(rows0) < 3000
    rows1 = [r for s, r in zip(src, mixed["row"], strict=True) if s == 1]
    assert len(rows1) > 500 and rows1[500] == 0
    assert mix(parts, weights, seed=3).to_dict() == mixed.to_dict()
    assert mix(parts, weights, seed=4)["src"] != src


def test_data_list_trains_and_data_flag_overrides_it(base: Path, tmp_path: Path) -> None:
    a, b = write_corpus(tmp_path / "a", 12), write_corpus(tmp_path / "b", 20, seed=9)
    listed = [f"data=[{{path: {a}, weight: 1}}, {{path: {b}, weight: 3}}]"]
    mixed = prepare(listed, None, tmp_path / "out", base)
    assert [c["weight"] for c in mixed.info["corpora"]] == [0.25, 0.75]
    assert mixed.info["rows"] > 0 and mixed.packed
    overridden = prepare(listed, b, tmp_path / "out", base)
    assert [c["path"] for c in overridden.info["corpora"]] == [str(b / "corpus.jsonl")]
    with pytest.raises(ConfigError, match="no training data"):
        corpora(load_student_recipe(TINY), None)
    from distill.train import train

    summary = train(TINY, None, tmp_path / "run", max_steps=2, settings=[*FAST, *listed])
    assert summary["global_step"] == 2 and len(summary["data"]["corpora"]) == 2
    assert json.loads((tmp_path / "run" / "train_metrics.json").read_text())["data"]["cache_hit"] is False


@pytest.mark.parametrize(("entry", "message"), [
    ("{path: C, weight: -1}", "key 'data[1].weight': expected a positive number"),
    ("{path: C, weight: 0}", "key 'data[1].weight': expected a positive number"),
    ("{path: C, weight: lots}", "key 'data[1].weight': expected a positive number"),
    ("{path: C, wieght: 2}", "key 'data[1]': expected {path: CORPUS, weight: W}"),
    ("{weight: 2}", "key 'data[1]': expected {path: CORPUS, weight: W}"),
    ("{path: /no/such/corpus, weight: 1}", "key 'data[1].path': /no/such/corpus"),
])
def test_a_bad_data_entry_is_one_error_naming_its_key(tmp_path: Path, entry: str, message: str) -> None:
    corpus = write_corpus(tmp_path / "c", 2)
    recipe_file = tmp_path / "student.yaml"
    text = TINY.read_text(encoding="utf-8").replace("chat_template: ", f"chat_template: {TINY.parent}/")
    recipe_file.write_text(text + f"data:\n  - {{path: {corpus}, weight: 1}}\n  - {entry.replace('C', str(corpus))}\n")
    with pytest.raises(ConfigError) as err:
        corpora(load_student_recipe(recipe_file), None)
    assert message in str(err.value) and str(recipe_file) in str(err.value)
    assert "\n" not in str(err.value)


def test_streaming_needs_max_steps(tmp_path: Path) -> None:
    from distill.train import train

    with pytest.raises(ConfigError, match="key 'streaming'.*--max-steps"):
        train(TINY, write_corpus(tmp_path / "c", 2), tmp_path / "out", settings=[*FAST, "streaming=true"])


def test_streaming_trains_ten_steps_on_a_corpus_four_times_the_address_space_limit(tmp_path: Path) -> None:
    """RLIMIT_AS caps the address space, not the resident memory, and importing torch alone maps a few GB. So
    the baseline is measured first: the same 10 streamed steps on a small corpus without a limit give its peak
    address space B (VmPeak). The limited run gets B + X with X = 128 MiB, on a corpus of 4X = 512 MiB of the same
    rows; it must train the same 10 steps with the same losses, and must fail to read its corpus into memory
    (so the limit binds: neither the whole corpus nor its Arrow cache, which memory maps count against, fits)."""
    worker = REPO / "tests" / "train" / "stream_worker.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2", "PYTHONPATH": str(REPO)}
    rows = write_corpus(tmp_path / "rows", 24)
    block = (rows / "corpus.jsonl").read_bytes()

    def run(corpus: Path, limit: int) -> dict:
        result = corpus.parent / f"{corpus.name}.json"
        cmd = [sys.executable, str(worker), str(corpus), str(corpus.parent / f"{corpus.name}-out"), str(limit), str(result)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(result.read_text())

    small = tmp_path / "small"
    small.mkdir()
    (small / "corpus.jsonl").write_bytes(block * 40)
    baseline = run(small, 0)
    x = 128 << 20
    big = tmp_path / "big"
    big.mkdir()
    with (big / "corpus.jsonl").open("wb") as handle:
        chunk = block * 400
        for _ in range(-(-4 * x // len(chunk))):
            handle.write(chunk)
    assert (big / "corpus.jsonl").stat().st_size >= 4 * x
    limited = run(big, baseline["vm_peak"] + x)
    assert limited["global_step"] == 10 and limited["losses"] == baseline["losses"]
    assert limited["whole_file_read"] == -1  # MemoryError: the corpus does not fit under the limit
    assert limited["vm_peak"] <= baseline["vm_peak"] + x
    assert limited["data"]["streaming"] is True
