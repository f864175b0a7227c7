"""Templates and labels: loss only on the assistant turn, which keeps the whole think block, `</think>`
and the EOS; over-long rows are counted and dropped or cut as the recipe says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.errors import ConfigError, RecordError
from distill.train.data import IGNORE, build_dataset, check_template, read_corpus, tokenize_row
from distill.train.recipe import load_student_recipe
from distill.train.sft import load_tokenizer

from .conftest import REPO, write_corpus


@pytest.fixture(scope="module")
def student_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    """The tokenizer `train()` uses for students/tiny.yaml (tiny base plus the recipe's template)."""
    from distill.train.sft import materialize_tiny

    recipe = load_student_recipe(REPO / "students" / "tiny.yaml")
    base = materialize_tiny(recipe, tmp_path_factory.mktemp("base"))
    return load_tokenizer(recipe, str(base))


def test_labels_of_a_real_corpus_row_cover_the_whole_assistant_turn(student_tokenizer, toy_corpus: Path) -> None:
    row = read_corpus(toy_corpus)[0]
    assistant = row["messages"][-1]["content"]
    ids, labels = tokenize_row(student_tokenizer, row["messages"])
    trained = [t for t in labels if t != IGNORE]
    # The trained tokens are exactly the assistant turn followed by the EOS, and nothing of the prompt.
    assert student_tokenizer.decode(trained) == assistant + student_tokenizer.eos_token
    assert trained[-1] == student_tokenizer.eos_token_id
    text = student_tokenizer.decode(trained)
    assert text.startswith("<think>\n") and "\n</think>\n\n" in text and "\\boxed{" in text
    masked = student_tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab == IGNORE])
    assert row["messages"][0]["content"] in masked and "<think>" not in masked
    # The trained span is contiguous and ends the assistant turn (only the template's newline follows).
    first = next(i for i, lab in enumerate(labels) if lab != IGNORE)
    last = max(i for i, lab in enumerate(labels) if lab != IGNORE)
    assert all(lab != IGNORE for lab in labels[first : last + 1])
    assert student_tokenizer.decode(ids[last + 1 :]) == "\n"


def test_eos_of_tokenizer_template_and_generation_config_agree(student_tokenizer) -> None:
    assert student_tokenizer.eos_token == "<|im_end|>"
    assert "<|im_end|>" in student_tokenizer.chat_template
    check_template(student_tokenizer, "tiny.yaml")  # raises unless the assistant turn ends in the EOS


def test_template_without_generation_markers_is_rejected(student_tokenizer) -> None:
    tokenizer = student_tokenizer.__class__.from_pretrained(student_tokenizer.name_or_path)
    tokenizer.chat_template = student_tokenizer.chat_template.replace("{%- generation -%}", "").replace(
        "{%- endgeneration -%}", ""
    )
    with pytest.raises(ConfigError, match="generation"):
        check_template(tokenizer, "bad.yaml")


def test_template_that_leaves_eos_out_of_the_loss_is_rejected(student_tokenizer) -> None:
    tokenizer = student_tokenizer.__class__.from_pretrained(student_tokenizer.name_or_path)
    tokenizer.chat_template = student_tokenizer.chat_template.replace(
        "{{- body + '<|im_end|>' -}}\n{%- endgeneration -%}", "{{- body -}}\n{%- endgeneration -%}{{- '<|im_end|>' -}}"
    )
    assert tokenizer.chat_template != student_tokenizer.chat_template
    with pytest.raises(ConfigError, match="not the EOS"):
        check_template(tokenizer, "bad.yaml")


@pytest.mark.parametrize("policy", ["drop", "truncate"])
def test_overlong_rows_are_counted_and_handled_as_the_recipe_says(student_tokenizer, tmp_path: Path, policy: str) -> None:
    rows = read_corpus(write_corpus(tmp_path, 12, difficulty=(1, 5)))
    lengths = [len(tokenize_row(student_tokenizer, r["messages"])[0]) for r in rows]
    limit = sorted(lengths)[len(lengths) // 2]
    over = [n for n in lengths if n > limit]
    dataset, report = build_dataset(rows, student_tokenizer, limit, policy)
    assert report.overlong == len(over) > 0
    assert report.overlong_tokens == sum(n - limit for n in over)
    assert report.longest == max(lengths)
    assert len(report.examples) == min(5, len(over))
    if policy == "drop":
        assert len(dataset) == report.kept == len(rows) - len(over)
    else:
        assert len(dataset) == report.kept == len(rows)
        assert max(len(x) for x in dataset["input_ids"]) == limit
    assert all(len(x) <= limit for x in dataset["input_ids"])


def test_overlong_report_is_logged(student_tokenizer, toy_corpus: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = read_corpus(toy_corpus)
    with caplog.at_level("WARNING"):
        build_dataset(rows, student_tokenizer, 160, "drop")
    assert "longer than max_length 160" in caplog.text and "dropped" in caplog.text


def test_bad_corpus_rows_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n")
    with pytest.raises(RecordError, match=r"corpus.jsonl:2: field 'messages'"):
        read_corpus(tmp_path)
    with pytest.raises(ConfigError, match="no corpus"):
        read_corpus(tmp_path / "missing")
