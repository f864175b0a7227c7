"""The notebooks run top to bottom (nbclient, the venv's python3 kernel) with small parameters; any cell
that raises fails the test."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]


def execute(name: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Run notebooks/NAME from the repository root with `env` set (the kernel inherits it)."""
    for key, value in {**env, "OMP_NUM_THREADS": "1"}.items():
        monkeypatch.setenv(key, value)
    book = nbformat.read(REPO / "notebooks" / name, as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    return book


def outputs(book: nbformat.NotebookNode) -> str:
    return "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for cell in book.cells if cell.cell_type == "code" for o in cell.get("outputs", []))


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = execute("quickstart.ipynb", {
        "NB_RUN_DIR": str(tmp_path / "nb"), "NB_N_TRAIN": "6", "NB_N_VALIDATION": "2", "NB_N_HELDOUT": "4",
        "NB_SAMPLES": "2", "NB_MAX_NEW_TOKENS": "96", "NB_MAX_STEPS": "2", "NB_CHECKPOINTS": "0", "NB_K": "1",
        # As in tests/pipeline/conftest.py: the corpus must not depend on how good the teacher is.
        "NB_FILTER_SET": "decontamination.enabled=false,correctness.enabled=false,format.enabled=false,"
                         "truncation.enabled=false",
    }, monkeypatch)
    text = outputs(book)
    assert "6 training problems, 2 validation, 4 held-out" in text
    assert "filtered - unfiltered" in text  # the paired differences
    assert "| filtered |" in text and "| teacher |" in text  # the comparison table
    assert (tmp_path / "nb" / "eval-teacher" / "summary.json").is_file()
    images = [o for cell in book.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2  # funnel and lengths, then accuracy


def test_explore_traces_notebook_runs(interrupted_run: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    book = execute("explore_traces.ipynb", {"NB_RUN_DIR": str(interrupted_run["run_dir"]), "NB_SHOW": "2"}, monkeypatch)
    text = outputs(book)
    assert "verified samples," in text and "drop reasons:" in text
    html = [o for cell in book.cells for o in cell.get("outputs", []) if "text/html" in o.get("data", {})]
    assert html and "sample 0" in html[0]["data"]["text/html"]


def test_teacher_signal_notebook_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    book = execute("teacher_signal.ipynb", {"NB_MAX_NEW_TOKENS": "48", "NB_PROBLEM_SEED": "3"}, monkeypatch)
    text = outputs(book)
    assert "tokens sampled by the student" in text and "reference:" in text
    assert "mean reverse KL estimate" in text and "the teacher disagrees most with:" in text
    images = [o for cell in book.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the per-token signal
