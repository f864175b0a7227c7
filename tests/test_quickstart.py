"""The README's main claim, guarded: the quickstart, run as a user runs it (the installed wheel, the shipped
recipe by name, an empty directory), ranks the student distilled from filtered traces above the one trained on
every trace, and that one above the untrained base, each by more than two standard errors of the paired
difference over the same held-out problems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.text import assistant_text

from .wheel import distill


@pytest.mark.slow
def test_the_quickstart_shows_the_thesis(installed: Path, tmp_path: Path) -> None:
    output = distill(installed, tmp_path, "run", "quickstart", "--run-dir", "quickstart", timeout=1500)
    assert "| filtered |" in output and "filtered - unfiltered" in output
    results = json.loads((tmp_path / "quickstart" / "results.json").read_text())
    for pair in ("filtered - unfiltered", "unfiltered - base"):
        numbers = results["paired"][pair]
        assert numbers["difference"] > 2 * numbers["paired_se"], (pair, numbers, output[-3000:])
    # The filtered student learnt from verified-correct traces only.
    run = tmp_path / "quickstart"
    verified = [json.loads(line) for line in (run / "samples" / "verified.jsonl").read_text().splitlines()]
    correct = {(s["problem_id"], assistant_text(s["reasoning"], s["content"])) for s in verified if s["correct"] is True}
    rows = [json.loads(line) for line in (run / "corpus-filtered" / "corpus.jsonl").read_text().splitlines()]
    assert rows and all((r["problem_id"], r["messages"][-1]["content"]) in correct for r in rows)
    assert json.loads((run / "corpus-filtered" / "funnel.json").read_text())["removed"]["correctness"] > 0
