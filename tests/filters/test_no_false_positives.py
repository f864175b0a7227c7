"""No filter drops a MATH-500 reference solution or a tiny-world gold trace written as a sample."""

from __future__ import annotations

import json

from distill.filters import filter_run, load_filter_config
from distill.jsonl import write_jsonl
from distill.problems import load_problems
from distill.records import Sample
from distill.toy.problems import generate

READABILITY_ON = ["long_paragraphs.enabled=true", "code_in_reasoning.enabled=true"]


def _as_sample(problem_id: str, reasoning: str, answer: str) -> Sample:
    return Sample(problem_id, 0, reasoning, f"The answer is \\boxed{{{answer}}}.", finish_reason="stop",
                  think_closed=True, correct=True, teacher="reference")


def test_math500_reference_solutions_all_kept(tmp_path):
    problems = load_problems("math500")
    write_jsonl(tmp_path / "s.jsonl", [_as_sample(p.id, p.solution, p.answer) for p in problems])
    # MATH-500's own problems are a benchmark, so decontaminating them against it would drop them by design;
    # its solutions are checked against every other filter (and decontamination against the other sets,
    # where one MATH problem shares the 8-gram "is not divisible by the square of any" with AIME 2024 I-14).
    config = load_filter_config(None, [*READABILITY_ON, "decontamination.enabled=false"])
    funnel = filter_run(tmp_path / "s.jsonl", tmp_path / "out", problems="math500", config=config)
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["problem_id"], r["filter"], r["filter_reason"]) for r in rejected] == []
    assert funnel["remaining"] == 500


def test_tiny_world_gold_traces_all_kept(tmp_path):
    pairs = generate(200, seed=3, difficulty=(1, 4))
    write_jsonl(tmp_path / "problems.jsonl", [p for p, _ in pairs])
    samples = []
    for problem, gold in pairs:
        reasoning, content = gold.split("</think>")
        samples.append(Sample(problem.id, 0, reasoning.replace("<think>", "").strip(), content.strip(),
                              finish_reason="stop", think_closed=True, correct=True))
    write_jsonl(tmp_path / "s.jsonl", samples)
    config = load_filter_config(None, READABILITY_ON)  # decontamination on, against every shipped benchmark
    funnel = filter_run(tmp_path / "s.jsonl", tmp_path / "out", problems=str(tmp_path / "problems.jsonl"), config=config)
    assert (tmp_path / "out" / "rejected.jsonl").read_text() == ""
    assert funnel["remaining"] == 200
