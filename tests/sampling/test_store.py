"""The run store and engine: exactly once per key, resume, torn tails, shards, budgets, until_correct."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest

from distill.errors import ConfigError, DistillError
from distill.records import Verdict
from distill.rundir import RunDir, in_shard
from distill.sampling import (
    Budget,
    SamplingConfig,
    Teacher,
    generate_run,
    parse_shard,
    read_manifest,
    read_samples,
)


def keys(run_dir):
    return Counter(s.key for s in read_samples(run_dir))


def test_run_writes_every_key_once_with_manifest_and_summary(tmp_path, problems, profile, fake_teacher):
    summary = generate_run(problems, profile, SamplingConfig(n=3), tmp_path / "run", teacher=fake_teacher,
                           problems_source="toy.jsonl")
    assert keys(tmp_path / "run") == Counter({(p.id, i): 1 for p in problems for i in range(3)})
    assert summary["samples"] == 36 and summary["complete"] and summary["stopped"] is None
    assert summary["finish_reasons"] == {"stop": 36}
    manifest = read_manifest(tmp_path / "run")
    assert manifest["problems"]["source"] == "toy.jsonl" and manifest["backend"] == "transformers"
    assert manifest["schema_version"] == 2 and manifest["sampling"]["n"] == 3 and manifest["shards"] == 1
    sample = next(read_samples(tmp_path / "run"))
    assert sample.reasoning.startswith("work on") and sample.content.startswith("The answer") and sample.think_closed


def test_restart_requests_only_missing_keys(tmp_path, problems, profile, fake_teacher):
    run = tmp_path / "run"
    generate_run(problems, profile, SamplingConfig(n=2), run, teacher=fake_teacher, limit=5)
    second = Teacher(profile, type(fake_teacher.backend)())
    generate_run(problems, profile, SamplingConfig(n=2), run, teacher=second)
    assert set(second.backend.requested) == {(p.id, i) for p in problems[5:] for i in range(2)}
    assert keys(run) == Counter({(p.id, i): 1 for p in problems for i in range(2)})


def test_torn_last_line_is_kept_aside_and_its_key_resampled(tmp_path, problems, profile, fake_teacher):
    run = tmp_path / "run"
    generate_run(problems, profile, SamplingConfig(n=1), run, teacher=fake_teacher)
    path = RunDir(run).shard_path((0, 1))
    lines = path.read_bytes().splitlines(keepends=True)
    torn_key = json.loads(lines[-1])["problem_id"]
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:25])  # a crash in the middle of the last write
    second = Teacher(profile, type(fake_teacher.backend)())
    summary = generate_run(problems, profile, SamplingConfig(n=1), run, teacher=second)
    assert second.backend.requested == [(torn_key, 0)]
    assert keys(run) == Counter({(p.id, 0): 1 for p in problems}) and summary["complete"]
    (torn,) = (run / "torn").iterdir()  # the torn bytes are kept, not deleted
    assert torn.read_bytes() == lines[-1][:25]


@pytest.mark.parametrize("change", ["sampling", "teacher", "problems"])
def test_resume_with_other_settings_is_refused(tmp_path, problems, profile, fake_teacher, change):
    run = tmp_path / "run"
    generate_run(problems, profile, SamplingConfig(n=1), run, teacher=fake_teacher, limit=3)
    config, other_profile, other_problems = SamplingConfig(n=1), profile, problems
    if change == "sampling":
        config = SamplingConfig(n=1, temperature=1.0)
    elif change == "teacher":
        other_profile = dataclasses.replace(profile, model="another-model")
    else:
        other_problems = problems[1:]
    with pytest.raises(ConfigError, match="refusing to resume with a different") as err:
        generate_run(other_problems, other_profile, config, run, teacher=fake_teacher)
    assert "manifest.json" in str(err.value)
    assert sum(keys(run).values()) == 3  # nothing written, nothing lost


def test_more_samples_on_resume_extends_the_run(tmp_path, problems, profile, fake_teacher):
    run = tmp_path / "run"
    generate_run(problems, profile, SamplingConfig(n=1), run, teacher=fake_teacher)
    generate_run(problems, profile, SamplingConfig(n=2), run, teacher=fake_teacher)
    assert keys(run) == Counter({(p.id, i): 1 for p in problems for i in range(2)})


def test_shards_split_problems_deterministically_and_merge(tmp_path, problems, profile, fake_teacher):
    run = tmp_path / "run"
    for index in range(3):
        generate_run(problems, profile, SamplingConfig(n=2), run, teacher=fake_teacher, shard=(index, 3))
    owners = [[i for i in range(3) if in_shard(p.id, (i, 3))] for p in problems]
    assert all(len(o) == 1 for o in owners) and len({o[0] for o in owners}) > 1
    assert keys(run) == Counter({(p.id, i): 1 for p in problems for i in range(2)})
    assert sorted(f.name for f in (run / "samples").glob("*.jsonl")) == [f"shard-{i}-of-3.jsonl" for i in range(3)]
    assert (run / "summary-shard-1-of-3.json").exists()


def test_parse_shard_rejects_bad_values():
    assert parse_shard("0/1") == (0, 1)
    for bad in ("3/3", "a/b", "1", "-1/2"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)


def test_budget_stops_cleanly_and_a_restart_finishes(tmp_path, problems, profile, fake_teacher):
    run = tmp_path / "run"
    summary = generate_run(problems, profile, SamplingConfig(n=2), run, teacher=fake_teacher, budget=Budget(max_samples=5))
    assert summary["stopped"] == "budget: max_samples" and not summary["complete"]
    assert sum(keys(run).values()) == 5
    assert json.loads((run / "summary.json").read_text())["stopped"] == "budget: max_samples"
    summary = generate_run(problems, profile, SamplingConfig(n=2), run, teacher=fake_teacher)
    assert summary["complete"] and keys(run) == Counter({(p.id, i): 1 for p in problems for i in range(2)})


def test_cost_cap_uses_profile_prices(tmp_path, problems, profile, fake_teacher):
    priced = dataclasses.replace(profile, api=dataclasses.replace(profile.api, price_input_per_million=1e6,
                                                                  price_output_per_million=1e6))
    # Each fake sample costs 7 prompt + 5 completion tokens = $12 at $1 per token.
    summary = generate_run(problems, priced, SamplingConfig(n=1), tmp_path / "run", teacher=fake_teacher,
                           budget=Budget(max_cost=30.0))
    assert summary["stopped"] == "budget: max_cost" and summary["this_run"]["samples"] == 3
    assert summary["this_run"]["cost_usd"] == 36.0


def test_until_correct_stops_each_problem_after_k_correct(tmp_path, problems, profile, fake_teacher):
    def verifier(problem, sample):
        return Verdict(correct="\\boxed{42}" in sample.content, verifier="test")

    summary = generate_run(problems, profile, SamplingConfig(n=8), tmp_path / "run", teacher=fake_teacher,
                           until_correct=2, verifier=verifier)
    # Odd sample indices are right: 2 correct are in hand after indices 0..3.
    assert set(fake_teacher.backend.requested) == {(p.id, i) for p in problems for i in range(4)}
    assert summary["saved_by_until_correct"] == len(problems) * 4 and summary["complete"]
    stored = list(read_samples(tmp_path / "run"))
    assert all(s.correct == (s.sample_index % 2 == 1) for s in stored)


def test_a_second_process_on_the_same_shard_is_refused(tmp_path):
    writer = RunDir(tmp_path / "run").open_shard((0, 1))
    try:
        with pytest.raises(DistillError, match="another process"):
            RunDir(tmp_path / "run").open_shard((0, 1))
    finally:
        writer.close()
