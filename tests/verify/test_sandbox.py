"""Hostile programs are contained: within the time limit plus a margin, with the right reason, no process
left behind, nothing written outside the scratch directory, no connection made, no secret read.

Runs as whoever runs the tests (root in CI) and again as an unprivileged user (nobody, through setpriv).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from distill.verify import sandbox

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import hostile  # noqa: E402

CASES = list(hostile.cases("/nonexistent", 1))

# Skipped only where bubblewrap is not installed; installed but not working is a failure, not a skip.
pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="the hostile-program guarantees are made for the bubblewrap sandbox "
                                       "(install bubblewrap; scripts/setup.sh does in CI)")


def test_bubblewrap_is_the_launcher_where_installed() -> None:
    assert sandbox.launcher().name == "bwrap", sandbox.launcher()


def _check(row: dict) -> None:
    name = row["case"]
    assert row["correct"] is False, row
    assert row["reason"] in row["allowed"], row
    assert row["seconds"] <= row["limit"], row
    assert row["leftover"] == [], f"{name}: processes left behind: {row['leftover']}"
    assert not row["outside_written"], f"{name}: wrote outside the sandbox"
    assert not row["connected"], f"{name}: reached a server on 127.0.0.1"
    assert row["network_isolated"] is True, row
    if name == "output_flood":
        assert row["output_capped"], row
    if name == "read_canary_secret":
        assert hostile.CANARY not in (row["error"] or ""), row
        assert row["error"] == "SystemExit: 3", row  # both asserts in the program held: no secret visible


@pytest.fixture(scope="module")
def as_us() -> dict[str, dict]:
    return {row["case"]: row for row in hostile.run_all()}


@pytest.fixture(scope="module")
def as_nobody() -> dict[str, dict]:
    if os.geteuid() != 0:
        pytest.skip("already running as a normal user: the in-process variant covers it")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is missing: cannot switch to an unprivileged user")
    repo = HERE.parent.parent
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                           str(HERE / "hostile.py")], cwd=repo, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "Permission denied" in proc.stderr and not proc.stdout:
        pytest.skip(f"the unprivileged user cannot run this interpreter: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {row["case"]: row for row in map(json.loads, proc.stdout.splitlines())}


@pytest.mark.parametrize("case", CASES)
def test_hostile_program_is_contained(as_us: dict[str, dict], case: str) -> None:
    _check(as_us[case])


@pytest.mark.parametrize("case", CASES)
def test_hostile_program_is_contained_as_normal_user(as_nobody: dict[str, dict], case: str) -> None:
    _check(as_nobody[case])


def test_program_runs_unprivileged_with_scrubbed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary")
    result = sandbox.run_python("import os, json\nprint(json.dumps([os.getuid(), dict(os.environ)]))\n")
    uid, env = json.loads(result.stdout)
    assert result.returncode == 0 and result.error is None
    if os.geteuid() == 0:
        assert uid == sandbox.NOBODY
    assert "OPENAI_API_KEY" not in env
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONHASHSEED", "PYTHONIOENCODING", "OMP_NUM_THREADS", "PWD"}


def test_scratch_directory_is_removed_and_writable() -> None:
    result = sandbox.run_python("import os\nopen('f.txt', 'w').write('x')\nprint(os.getcwd())\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(os.path.join("/tmp", "distill-sandbox-")) or "distill-sandbox-" in result.stdout
    assert not os.path.exists(result.stdout.strip())


def test_a_failed_sandbox_is_a_sandbox_error_not_a_wrong_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from distill.records import Problem, Sample
    from distill.verify.code import verify_code

    def broken(*args: object, **kwargs: object) -> sandbox.RunResult:
        return sandbox.RunResult(returncode=None, error="could not start the sandbox: test")

    monkeypatch.setattr("distill.verify.code.run_python", broken)
    problem = Problem(id="c", prompt="f", kind="code", tests={"type": "asserts", "asserts": ["assert f() == 1"],
                                                              "setup": "", "entry_point": "f"})
    verdict = verify_code(problem, Sample("c", 0, "", "```python\ndef f():\n    return 1\n```"))
    assert verdict.correct is None and verdict.reason == "sandbox_error"


def test_without_namespaces_the_verdict_says_so(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from distill.records import Problem, Sample
    from distill.verify.code import verify_code

    real_which = shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None if name in ("bwrap", "unshare") else real_which(name))
    monkeypatch.setattr(sandbox, "_LAUNCHER", None)
    monkeypatch.setattr(sandbox, "_WARNED", False)
    problem = Problem(id="c", prompt="f", kind="code", tests={"type": "asserts", "asserts": ["assert f() == 1"],
                                                              "setup": "", "entry_point": "f"})
    with caplog.at_level("WARNING", logger="distill.verify.sandbox"):
        verdict = verify_code(problem, Sample("c", 0, "", "```python\nimport os\ndef f():\n    return 1\n```"))
    assert verdict.correct is True
    assert verdict.details["network_isolated"] is False and verdict.details["sandbox"] == "plain"
    assert "NO NETWORK ISOLATION" in caplog.text
    if os.geteuid() == 0:
        result = sandbox.run_python("import os\nprint(os.getuid())")
        assert result.stdout.strip() == str(sandbox.NOBODY)  # still not root
