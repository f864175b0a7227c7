"""`distill import`: OpenR1-Math, OpenThoughts/Bespoke-Stratos and prompt/completion layouts become a run
directory that `distill filter` reads through its manifest."""

from __future__ import annotations

import json

import pytest

from distill.errors import DistillError, RecordError
from distill.filters import filter_run, load_filter_config
from distill.importer import import_traces
from distill.jsonl import write_jsonl, write_parquet
from distill.sampling import read_manifest, read_samples

NO_DECONTAM = load_filter_config(None, ["decontamination.enabled=false"])


def test_openr1_math_generations(tmp_path):
    rows = [{"problem": "What is 2 + 3? Give the sum.", "solution": "2 + 3 = 5", "answer": "5", "source": "olympiads",
             "uuid": "u1", "generations": ["<think>\nAdd two and three to get five.\n</think>\n\nThe answer is \\boxed{5}.",
                                           "<think>\nTwo plus three is five, so the total is five.\n</think>\n\n\\boxed{5}",
                                           "<think>\nStill thinking about it and"],
             "finish_reasons": ["stop", "stop", "length"],
             "messages": [{"role": "user", "content": "What is 2 + 3? Give the sum."},
                          {"role": "assistant", "content": "ignored: generations win"}]}]
    write_jsonl(tmp_path / "openr1.jsonl", rows)
    summary = import_traces(tmp_path / "openr1.jsonl", tmp_path / "run")
    assert (summary["problems"], summary["samples"]) == (1, 3)
    samples = list(read_samples(tmp_path / "run"))
    assert [s.sample_index for s in samples] == [0, 1, 2]
    assert samples[0].reasoning == "Add two and three to get five." and samples[0].content == "The answer is \\boxed{5}."
    assert samples[2].think_closed is False and samples[2].finish_reason == "length"
    manifest = read_manifest(tmp_path / "run")
    assert manifest["problems"]["count"] == 1
    problems = [json.loads(line) for line in (tmp_path / "run" / "problems.jsonl").read_text().splitlines()]
    assert problems[0]["answer"] == "5" and problems[0]["source"] == "olympiads"
    # Re-filter with the same command; verdicts are missing, so keep unjudged samples here.
    config = load_filter_config(None, ["decontamination.enabled=false", "correctness.unjudged=keep"])
    funnel = filter_run(tmp_path / "run", tmp_path / "corpus", config=config)
    assert funnel["remaining"] == 2 and funnel["removed"]["truncation"] == 1


def test_bespoke_stratos_conversations_parquet(tmp_path):
    system = "Your role as an assistant involves thoroughly exploring questions through a systematic long thinking process."
    rows = [{"system": system, "conversations": [
        {"from": "user", "value": f"Return your final response within \\boxed{{}}. Compute {i} times three."},
        {"from": "assistant", "value": f"<|begin_of_thought|>\n\nMultiply {i} by three.\n\n<|end_of_thought|>\n\n"
                                       f"<|begin_of_solution|>\n\nThe product is \\boxed{{{3 * i}}}.\n\n<|end_of_solution|>"}]}
            for i in range(4)]
    write_parquet(tmp_path / "stratos.parquet", rows)
    summary = import_traces(tmp_path / "stratos.parquet", tmp_path / "run", teacher="deepseek-r1")
    assert (summary["problems"], summary["samples"]) == (4, 4)
    sample = next(read_samples(tmp_path / "run"))
    assert (sample.reasoning, sample.content, sample.teacher) == ("Multiply 0 by three.", "The product is \\boxed{0}.",
                                                                   "deepseek-r1")
    # The prompt the trace answered, system turn included, is recorded with the sample.
    assert sample.prompt == [{"role": "system", "content": system},
                             {"role": "user", "content": "Return your final response within \\boxed{}. Compute 0 times three."}]
    problem = json.loads((tmp_path / "run" / "problems.jsonl").read_text().splitlines()[0])
    assert problem["prompt"].endswith("Compute 0 times three.") and problem["meta"]["system"] == system


def test_prompt_completion_datasets_dir_with_mapping(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list([
        {"question_text": "How many legs do 3 cats have?", "final": "12", "response": "Each cat has four legs.",
         "thinking": "Three cats, four legs each, twelve."},
    ])
    ds.save_to_disk(str(tmp_path / "ds"))
    summary = import_traces(tmp_path / "ds", tmp_path / "run",
                            mapping={"prompt": "question_text", "answer": "final", "completion": "response",
                                     "reasoning": "thinking"})
    assert summary["samples"] == 1
    sample = next(read_samples(tmp_path / "run"))
    assert sample.reasoning == "Three cats, four legs each, twelve." and sample.content == "Each cat has four legs."
    problem = json.loads((tmp_path / "run" / "problems.jsonl").read_text())
    assert problem["answer"] == "12" and "response" not in problem.get("meta", {})


def test_bad_rows_and_reimport_fail_clearly(tmp_path):
    write_jsonl(tmp_path / "bad.jsonl", [{"problem": "No trace here at all."}])
    with pytest.raises(RecordError, match=r"bad.jsonl:1: no completion"):
        import_traces(tmp_path / "bad.jsonl", tmp_path / "run")
    write_jsonl(tmp_path / "ok.jsonl", [{"prompt": "p?", "completion": "<think>a</think> b"}])
    import_traces(tmp_path / "ok.jsonl", tmp_path / "run2")
    with pytest.raises(DistillError, match="already a run directory"):
        import_traces(tmp_path / "ok.jsonl", tmp_path / "run2")
    with pytest.raises(RecordError, match="--map colour"):
        import_traces(tmp_path / "ok.jsonl", tmp_path / "run3", mapping={"colour": "x"})
