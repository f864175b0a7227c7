"""Fixtures for the sampling tests: toy problems, a fast scripted backend, profiles."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from distill.records import Problem
from distill.sampling import SamplingConfig, Teacher, TeacherProfile
from distill.sampling.backends import Completion, Request


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
