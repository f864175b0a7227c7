"""Corpus rows of a run with teacher logprobs: each kept row carries the teacher's token ids and a reference to
its logprob record (never a copy), a row whose text is not the text of its ids is refused and counted, and
the run's location stays in the local-only OUT/local.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from distill.errors import DistillError
from distill.filters import filter_run, load_filter_config
from distill.jsonl import read_jsonl, write_jsonl
from distill.logprobs import SidecarReader, encode
from distill.records import Problem, Sample, to_dict
from distill.rundir import RunDir
from distill.text import MATH_PROMPT_SUFFIX, split_completion

REPO = Path(__file__).resolve().parents[2]
TEACHER = REPO / "teachers" / "tiny"


def write_run(path: Path, tokenizer, rows: list[tuple[str, list[int] | None, str | None]], manifest_local: bool = True):
    """A run whose samples were 'generated' as the given token ids; a row's text (when given) replaces the text
    those ids decode to, as a backend that post-processed its output would store."""
    problems = [Problem(id=f"p{i}", prompt=f"What is {i} + 1?", answer=str(i + 1), source="toy") for i in range(len(rows))]
    write_jsonl(path.parent / "problems.jsonl", (to_dict(p) for p in problems))
    run = RunDir(path)
    manifest = {"teacher": {"name": "tiny", "model": "tiny"}, "sampling": {"n": 1, "logprobs": 2},
                "problems": {"source": str(path.parent / "problems.jsonl")},
                "local": {"teacher_model_path": str(TEACHER)} if manifest_local else {}}
    run.start(manifest)
    writer = run.open_shard((0, 1), sides=("logprobs",))
    for problem, (text, ids, stored) in zip(problems, rows, strict=True):
        messages = [{"role": "user", "content": f"{problem.prompt}\n{MATH_PROMPT_SUFFIX}"}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
        ids = ids if ids is not None else tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        reasoning, content, closed = split_completion(stored if stored is not None else tokenizer.decode(ids, skip_special_tokens=True))
        n = len(ids)
        record = encode(ids, -np.full(n, 0.1), np.stack([ids, ids]).T, -np.tile([0.1, 3.0], (n, 1)), prompt["input_ids"])
        sample = Sample(problem_id=problem.id, sample_index=0, reasoning=reasoning, content=content, finish_reason="stop",
                        teacher="tiny", prompt=messages, think_closed=closed, correct=True, completion_tokens=n)
        writer.write(sample, {"logprobs": record})
    writer.close()
    return run


def test_kept_rows_refer_to_their_records_and_a_mismatch_is_refused(tmp_path):
    from distill.sampling.backends.transformers_backend import load_tokenizer

    tokenizer = load_tokenizer(str(TEACHER))
    good = "Start with 1.\n1 + 1: 1+1=2, so 2.\n</think>\n\nThe answer is \\boxed{2}."
    # The same text in another segmentation (one id per character): still the text of its ids, so it is kept and
    # KD trains on exactly these ids.
    chars = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(c))[0] for c in "Start with 2."] + \
        tokenizer("\n2 + 1: 2+1=3, so 3.\n</think>\n\nThe answer is \\boxed{3}.", add_special_tokens=False)["input_ids"]
    stored_differently = "Start with 3.\n3 + 1: 3+1=4, so 4.\n</think>\n\nThe answer is \\boxed{4}."
    run = write_run(tmp_path / "run", tokenizer, [
        (good, None, None),
        ("", chars + [tokenizer.eos_token_id], None),
        # The stored text lost a space the ids have (a backend that stripped a stop string would do this).
        (stored_differently, None, stored_differently.replace("is \\boxed", "is\\boxed")),
    ])
    before = {p.name: p.read_bytes() for p in run.samples_dir.iterdir()}
    funnel = filter_run(run.path, tmp_path / "corpus", config=load_filter_config(None, ["decontamination.enabled=false"]))
    assert {p.name: p.read_bytes() for p in run.samples_dir.iterdir()} == before  # the run is only read
    assert funnel["removed"]["token_mismatch"] == 1 and funnel["remaining"] == 2
    (rejected,) = [r for _, r in read_jsonl(tmp_path / "corpus" / "rejected.jsonl")]
    assert rejected["problem_id"] == "p2" and "character" in rejected["filter_reason"]
    rows = [r for _, r in read_jsonl(tmp_path / "corpus" / "corpus.jsonl")]
    reader = SidecarReader(run.side_path((0, 1), "logprobs"))
    for row in rows:
        ref = row["logprobs"]
        assert ref["run"] == "run" and ref["file"] == "shard-0-of-1.logprobs" and set(ref) == {"run", "file", "offset", "length"}
        record = reader.read(ref["offset"], ref["length"])
        assert row["token_ids"] == record.token_ids.tolist()
        assert "top_logprobs" not in json.dumps(row)  # a reference, not a copy
    assert rows[1]["token_ids"][:13] == chars[:13]
    # The run's path is local: it is in local.json, not in the published corpus, funnel or card.
    local = json.loads((tmp_path / "corpus" / "local.json").read_text())
    assert local == {"runs": {"run": str(run.path.resolve())}}
    for name in ("corpus.jsonl", "funnel.json", "README.md"):
        assert str(tmp_path) not in (tmp_path / "corpus" / name).read_text()
    table = pq.read_table(tmp_path / "corpus" / "corpus.parquet")
    assert table.column("token_ids").to_pylist() == [r["token_ids"] for r in rows]


def test_a_run_with_logprobs_and_no_teacher_tokenizer_is_refused(tmp_path):
    from distill.sampling.backends.transformers_backend import load_tokenizer

    tokenizer = load_tokenizer(str(TEACHER))
    run = write_run(tmp_path / "run", tokenizer, [("Start.\n</think>\n\nThe answer is \\boxed{1}.", None, None)],
                    manifest_local=False)
    config = load_filter_config(None, ["decontamination.enabled=false"])
    with pytest.raises(DistillError, match="no local tokenizer of the teacher.*--tokenizer"):
        filter_run(run.path, tmp_path / "corpus", config=config)
    funnel = filter_run(run.path, tmp_path / "corpus", config=config, tokenizer=str(TEACHER))
    assert funnel["remaining"] == 1
