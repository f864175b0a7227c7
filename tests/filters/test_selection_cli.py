"""Selection (K per problem, policies, solved-rate drops, pass rates), the CLI, and clear failures."""

from __future__ import annotations

import json
import sys

import pytest

from distill.filters import filter_run, load_filter_config
from distill.jsonl import write_jsonl
from distill.records import Problem, Sample

STEPS = ["First add the two numbers together.", "Then subtract the smaller amount given away.",
         "Multiply the count by the factor from the story.", "Check the carry in every column again.",
         "Compare the result with a rough estimate.", "Rewrite the sum in a different order to confirm."]


def _world(tmp_path, correct_pattern):
    problems = [Problem(f"p{i}", f"Problem number {i}: how many apples remain in basket {i}?", source="demo")
                for i in range(len(correct_pattern))]
    samples = []
    for i, pattern in enumerate(correct_pattern):
        for j, ok in enumerate(pattern):
            reasoning = " ".join(STEPS[(j + k) % len(STEPS)] for k in range(j + 1)) + f" Basket {i}, try {j}."
            samples.append(Sample(f"p{i}", j, reasoning, f"The answer is \\boxed{{{i}}}.", finish_reason="stop",
                                  think_closed=True, correct=ok, completion_tokens=10 * (j + 1)))
    write_jsonl(tmp_path / "problems.jsonl", problems)
    write_jsonl(tmp_path / "s.jsonl", samples)
    return tmp_path / "s.jsonl", str(tmp_path / "problems.jsonl")


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("policy", ["random", "shortest", "diverse"])
def test_at_most_k_per_problem_with_pass_rates(tmp_path, policy):
    samples, problems = _world(tmp_path, [[True] * 5, [True, True, False, True], [False, True, True]])
    config = load_filter_config(None, ["selection.max_per_problem=2", f"selection.policy={policy}",
                                       "decontamination.enabled=false"])
    funnel = filter_run(samples, tmp_path / "out", problems=problems, config=config)
    corpus = _rows(tmp_path / "out" / "corpus.jsonl")
    per_problem = {r["problem_id"]: [] for r in corpus}
    for row in corpus:
        per_problem[row["problem_id"]].append(row)
    assert {k: len(v) for k, v in per_problem.items()} == {"p0": 2, "p1": 2, "p2": 2}
    assert {r["problem_id"]: r["pass_rate"] for r in corpus} == {"p0": 1.0, "p1": 0.75, "p2": 2 / 3}
    assert funnel["removed"]["selection"] == 3 + 1
    if policy == "shortest":
        assert sorted(r["completion_tokens"] for r in per_problem["p0"]) == [10, 20]
    again = filter_run(samples, tmp_path / "again", problems=problems, config=config)
    assert (tmp_path / "again" / "corpus.jsonl").read_text() == (tmp_path / "out" / "corpus.jsonl").read_text()
    assert again == funnel


def test_drop_always_and_never_solved(tmp_path):
    samples, problems = _world(tmp_path, [[True] * 3, [False] * 3, [True, False, True]])
    config = load_filter_config(None, ["selection.drop_always_solved=true", "selection.drop_never_solved=true",
                                       "correctness.enabled=false", "decontamination.enabled=false"])
    funnel = filter_run(samples, tmp_path / "out", problems=problems, config=config)
    assert {r["problem_id"] for r in _rows(tmp_path / "out" / "corpus.jsonl")} == {"p2"}
    assert funnel["removed"]["always_solved"] == 3 and funnel["removed"]["never_solved"] == 3
    rejected = _rows(tmp_path / "out" / "rejected.jsonl")
    assert {r["pass_rate"] for r in rejected if r["filter"] == "never_solved"} == {0.0}


def test_duplicate_key_and_unknown_problem(tmp_path):
    samples, problems = _world(tmp_path, [[True, True]])
    with open(samples, "a") as handle:
        handle.write(json.dumps({"problem_id": "p0", "sample_index": 0, "reasoning": "other words entirely here",
                                 "content": "\\boxed{0}", "correct": True}) + "\n")
        handle.write(json.dumps({"problem_id": "nope", "sample_index": 0, "reasoning": "r", "content": "c"}) + "\n")
    funnel = filter_run(samples, tmp_path / "out", problems=problems,
                        config=load_filter_config(None, ["decontamination.enabled=false"]))
    assert funnel["removed"]["duplicate_key"] == 1 and funnel["removed"]["unknown_problem"] == 1
    assert funnel["remaining"] == 2


def test_length_in_tokens_of_a_local_tokenizer(tmp_path, toy_tokenizer):
    toy_tokenizer.save_pretrained(tmp_path / "tok")
    samples, problems = _world(tmp_path, [[True] * 4])
    config = load_filter_config(None, [f"length.tokenizer={tmp_path / 'tok'}", "length.max=80",
                                       "decontamination.enabled=false"])
    funnel = filter_run(samples, tmp_path / "out", problems=problems, config=config)
    corpus = _rows(tmp_path / "out" / "corpus.jsonl")
    assert funnel["removed"]["length"] == 4 - len(corpus) and 0 < len(corpus) < 4
    for row in corpus:  # token counts are in the named tokenizer's tokens
        ids = toy_tokenizer(row["messages"][-1]["content"], add_special_tokens=False)["input_ids"]
        assert row["completion_tokens"] == len(ids) <= 80
    rejected = _rows(tmp_path / "out" / "rejected.jsonl")
    assert all("tokens > max 80" in r["filter_reason"] for r in rejected)


def _cli(monkeypatch, capsys, *args):
    from distill.cli import main

    monkeypatch.setattr(sys, "argv", ["distill", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr()


def test_cli_without_problems_fails_clearly(tmp_path, monkeypatch, capsys):
    samples, _ = _world(tmp_path, [[True]])
    code, captured = _cli(monkeypatch, capsys, "filter", str(samples), "--out", str(tmp_path / "out"))
    assert code == 1
    assert "no problem set" in captured.err and "--problems" in captured.err
    assert not (tmp_path / "out" / "corpus.jsonl").exists()


def test_cli_bad_config_key_names_it(tmp_path, monkeypatch, capsys):
    samples, problems = _world(tmp_path, [[True]])
    (tmp_path / "f.yaml").write_text("selection:\n  max_per_problm: 2\n")
    code, captured = _cli(monkeypatch, capsys, "filter", str(samples), "--out", str(tmp_path / "out"),
                          "--problems", problems, "--config", str(tmp_path / "f.yaml"))
    assert code == 1 and "f.yaml: selection: unknown key 'max_per_problm'" in captured.err


def test_cli_filter_runs(tmp_path, monkeypatch, capsys):
    samples, problems = _world(tmp_path, [[True, True, True]])
    code, captured = _cli(monkeypatch, capsys, "filter", str(samples), "--out", str(tmp_path / "out"),
                          "--problems", problems, "--max-per-problem", "1", "--set", "decontamination.enabled=false")
    assert code in (0, None)
    assert "3 samples in, 1 in" in captured.out
    assert len(_rows(tmp_path / "out" / "corpus.jsonl")) == 1
