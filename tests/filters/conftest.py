"""Fixtures for the filter tests: the planted-defect set written as a run directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from planted_filters import planted_set  # noqa: E402

from distill.jsonl import write_jsonl  # noqa: E402
from distill.records import to_dict  # noqa: E402


@pytest.fixture(scope="session")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """A run dir (manifest naming problems.jsonl, samples/shard-0-of-1.jsonl) of the planted set, and its labels."""
    problems, rows = planted_set()
    run = tmp_path_factory.mktemp("planted")
    write_jsonl(run / "problems.jsonl", problems)
    write_jsonl(run / "samples" / "shard-0-of-1.jsonl", [s for s, _ in rows])
    manifest = {"problems": {"source": str(run / "problems.jsonl"), "fingerprint": "x", "count": len(problems)},
                "teacher": {"name": "planted", "model": "planted-model"}, "sampling": {"temperature": 0.6, "top_p": 0.95}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run, [(to_dict(s), label) for s, label in rows]
