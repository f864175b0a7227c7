"""The transformers backend on the tiny random model, and `distill generate` end to end (kill -9 included)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch

from distill.jsonl import write_jsonl
from distill.records import Problem, to_dict
from distill.rundir import RunDir
from distill.sampling import SamplingConfig, build_prompt, build_teacher, read_samples, render_prompt
from distill.sampling.profile import LocalOptions, profile_for_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_teacher(tiny_model_dir):
    profile = dataclasses.replace(profile_for_model(str(tiny_model_dir)), local=LocalOptions(batch_size=4))
    return build_teacher(profile)


def toy(n: int) -> list[Problem]:
    from distill.toy.problems import generate

    return [p for p, _ in generate(n, seed=3)]


def test_generate_gives_n_samples_per_problem_in_input_order(tiny_teacher):
    problems = toy(5)
    samples = tiny_teacher.generate(problems, SamplingConfig(n=2, max_new_tokens=6))
    assert [s.key for s in samples] == [(p.id, i) for p in problems for i in range(2)]
    assert all(s.finish_reason in ("stop", "length") and 1 <= s.completion_tokens <= 6 for s in samples)
    # Samples name the teacher by its public id (a local checkpoint: the profile's name, never its path) and
    # record the prompt exactly as sent.
    assert all(s.prompt_tokens > 10 and s.teacher == tiny_teacher.profile.name and "/" not in s.teacher for s in samples)
    assert all(s.prompt == build_prompt(p, tiny_teacher.profile) for p in problems for s in samples if s.problem_id == p.id)


def test_same_seed_reproduces_and_another_seed_differs(tiny_teacher):
    problems = toy(4)
    config = SamplingConfig(n=2, max_new_tokens=8, seed=11)
    first = [(s.reasoning, s.content) for s in tiny_teacher.generate(problems, config)]
    again = [(s.reasoning, s.content) for s in tiny_teacher.generate(problems, config)]
    other = [(s.reasoning, s.content) for s in tiny_teacher.generate(problems, config.replace(seed=12))]
    assert first == again and first != other


def test_stop_strings_end_a_completion(tiny_teacher):
    problems = toy(3)
    free = tiny_teacher.generate(problems, SamplingConfig(n=1, max_new_tokens=12, seed=5))
    # A stop string that the free-running model emits: its first generated character.
    stop = free[0].reasoning[:1]
    assert stop
    stopped = tiny_teacher.generate(problems, SamplingConfig(n=1, max_new_tokens=12, seed=5, stop=[stop]))
    assert stopped[0].finish_reason == "stop" and stop not in stopped[0].reasoning + stopped[0].content


def test_prompt_opens_the_think_block_as_the_profile_says(tiny_teacher, toy_tokenizer):
    messages = [{"role": "user", "content": "1+1?"}]
    profile = tiny_teacher.profile
    assert render_prompt(messages, toy_tokenizer, profile).endswith("<|im_start|>assistant\n<think>\n")
    closed = dataclasses.replace(profile, open_think=False)
    assert render_prompt(messages, toy_tokenizer, closed).endswith("<|im_start|>assistant\n")


@pytest.mark.slow
def test_kill_minus_9_then_restart_gives_every_key_exactly_once(tmp_path, tiny_model_dir):
    problems_file = tmp_path / "problems.jsonl"
    problems = toy(60)
    write_jsonl(problems_file, (to_dict(p) for p in problems))
    run = tmp_path / "run"
    command = [sys.executable, "-c", "from distill.cli import main; main()", "generate", "--problems", str(problems_file), "--model",
               str(tiny_model_dir), "--backend", "transformers", "--samples", "2", "--out", str(run),
               "--max-new-tokens", "8", "--batch-size", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = RunDir(run).shard_path((0, 1))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if store.exists() and store.read_bytes().count(b"\n") >= 4:
            break
        time.sleep(0.01)
    assert process.poll() is None, process.stderr.read().decode()[-2000:] if process.stderr else ""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    partial = Counter(s.key for s in read_samples(run))
    assert 4 <= sum(partial.values()) < 120, "the store must be partial when the process is killed"
    assert all(count == 1 for count in partial.values())
    # A bigger batch on restart: batch size is no part of the run's identity, and it keeps the test short.
    restart = subprocess.run(command[:-1] + ["16"], env=env, capture_output=True, text=True, timeout=300)
    assert restart.returncode == 0, restart.stderr[-2000:]
    final = list(read_samples(run))
    assert Counter(s.key for s in final) == Counter({(p.id, i): 1 for p in problems for i in range(2)})
    assert all(s.finish_reason in ("stop", "length") and s.completion_tokens and s.sampling["n"] == 2 for s in final)
    assert "120 samples stored, complete" in restart.stdout
