"""Crash and resume, for real: a sampling run is killed with SIGKILL at 20 points drawn with a fixed seed and at
each named point of the run directory (mid-append, tail repair, manifest temp write, rename, summary write),
resumed each time, and in the end holds every key exactly once. The kills come from the test-only fault hook
(`distill.faults`), not from timing."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from distill.jsonl import write_jsonl
from distill.records import to_dict
from distill.rundir import RunDir, read_samples
from distill.testing.scripted_server import ScriptedServer
from distill.toy.problems import generate

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("fault_runner.py")
NAMED = ["atomic-temp-written:1", "atomic-renamed:1", "mid-append:2", "tail-repair:1", "summary-write:1"]


def schedule(seed: int = 0, draws: int = 20) -> list[str]:
    """The named points in an order where each can be reached, with 20 random append kills among them."""
    rng = random.Random(seed)
    random_kills = [f"append:{rng.randint(1, 4)}" for _ in range(draws)]
    # The manifest is written once, by the first process: kill it while its temp file is written, then just
    # after the rename. A kill mid-append leaves a torn line, which the next process repairs (killed there too).
    return NAMED[:4] + random_kills[:10] + ["mid-append:1", "tail-repair:1"] + random_kills[10:] + NAMED[4:]


def run_schedule(tmp_path: Path, **job: object) -> list[dict]:
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, (to_dict(p) for p, _ in generate(24, seed=11, difficulty=(1, 1))))
    spec = {"run": str(tmp_path / "run"), "problems": str(problems), "samples": 2, "max_new_tokens": 8,
            "batch_size": 4, "plans": schedule(), **job}
    (tmp_path / "job.json").write_text(json.dumps(spec), encoding="utf-8")
    result = subprocess.run([sys.executable, str(RUNNER), str(tmp_path / "job.json")], capture_output=True, text=True,
                            timeout=240, cwd=REPO, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def check(tmp_path: Path, outcomes: list[dict]) -> None:
    # Every named point was reached and killed the process there; the last, unplanned run completed.
    killed = {o["plan"] for o in outcomes if o["killed"]}
    assert set(NAMED) <= killed, outcomes
    assert sum(o["killed"] for o in outcomes) >= 20 and outcomes[-1] == {"plan": "", "killed": False, "exit": 0}
    keys = Counter(s.key for s in read_samples(tmp_path / "run"))
    assert keys == Counter({(f"toy-11-{i}", j): 1 for i in range(24) for j in range(2)})
    run = RunDir(tmp_path / "run")
    assert run.manifest()["shards"] == 1 and json.loads(run.summary_path.read_text())["complete"]
    assert any(run.torn_dir.iterdir())  # the torn line was kept, not thrown away


@pytest.mark.slow
def test_a_transformers_run_survives_every_kill(tmp_path: Path) -> None:
    outcomes = run_schedule(tmp_path, backend="transformers", model=str(REPO / "teachers" / "tiny"))
    check(tmp_path, outcomes)


@pytest.mark.slow
def test_an_openai_run_survives_every_kill(tmp_path: Path) -> None:
    with ScriptedServer() as server:
        outcomes = run_schedule(tmp_path, backend="openai", model="scripted", base_url=server.url)
    check(tmp_path, outcomes)
