"""The sandbox: hostile programs are contained (as whoever runs the tests, root in CI, and as an
unprivileged user), a fork bomb does not sink a correct sample judged beside it, the view holds only
the interpreter and its stdlib, an interpreter under /tmp still works, and code verification refuses
to run without bubblewrap unless told it may.

Tests that need bubblewrap or an unprivileged user fail rather than skip when CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from distill.records import Problem, Sample
from distill.verify import sandbox, selftest
from distill.verify.code import verify_code
from distill.verify.harness import run_role
from distill.verify.view import view

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import hostile  # noqa: E402
from need import need  # noqa: E402
from unprivileged import run_script  # noqa: E402

CASES = list(hostile.cases({"port": 1, "unix": "", "abstract": "", "outside": "", "token": "", "bashrc": "",
                            "problem_set": "", "host_tmp": ""}))
PROBLEM_SET = {"DISTILL_PROBLEM_SET": str(REPO / "data" / "humaneval.jsonl")}
ADD = Problem(id="c", prompt="f", kind="code", tests={"type": "asserts", "asserts": ["assert f() == 1"],
                                                     "setup": "", "entry_point": "f"})
RIGHT = Sample("c", 0, "", "```python\ndef f():\n    return 1\n```")


def _run_here(mode: str) -> list[dict]:
    need(shutil.which("bwrap") is not None, "bubblewrap (bwrap) is not installed (scripts/setup.sh installs it)")
    proc = subprocess.run([sys.executable, str(HERE / "hostile.py"), mode], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env={**os.environ, **PROBLEM_SET})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def _run_unprivileged(mode: str) -> list[dict]:
    if os.geteuid() != 0:
        return _run_here(mode)  # we are the normal user already
    return run_script("hostile.py", [mode], env=PROBLEM_SET)


@pytest.fixture(scope="module")
def as_us() -> dict[str, dict]:
    return {row["case"]: row for row in _run_here("cases")}


@pytest.fixture(scope="module")
def as_normal_user() -> dict[str, dict]:
    return {row["case"]: row for row in _run_unprivileged("cases")}


def _check(row: dict) -> None:
    name = row["case"]
    assert row["correct"] is False, row
    assert row["reason"] in row["allowed"], row
    assert row["seconds"] <= row["limit"], row
    assert row["leftover"] == [], f"{name}: processes left behind: {row['leftover']}"
    assert not row["outside_written"], f"{name}: wrote outside the sandbox"
    assert row["bashrc_intact"], f"{name}: changed the host's ~/.bashrc"
    assert not row["connected"], f"{name}: reached a socket of the host"
    assert row["sandbox"] == "bwrap", row
    if name == "output_flood":
        assert row["output_capped"], row
    if name == "read_canary_secret":
        assert hostile.CANARY not in (row["error"] or ""), row
        assert row["error"] == "SystemExit: 3", row  # both asserts in the program held: no secret visible
    if name in ("read_host_token", "read_problem_set", "write_host_bashrc", "host_unix_socket"):
        assert "No such file or directory" in (row["error"] or ""), row  # not there at all, not just forbidden
    if name == "fill_scratch":
        assert "No space left on device" in (row["error"] or ""), row


@pytest.mark.parametrize("case", CASES)
def test_hostile_program_is_contained(as_us: dict[str, dict], case: str) -> None:
    _check(as_us[case])


@pytest.mark.parametrize("case", CASES)
def test_hostile_program_is_contained_as_normal_user(as_normal_user: dict[str, dict], case: str) -> None:
    _check(as_normal_user[case])


def _check_pool(rows: list[dict]) -> None:
    assert [r["kind"] for r in rows] == ["bomb", "correct", "bomb", "correct", "correct", "bomb", "correct", "correct"]
    for row in rows:
        if row["kind"] == "correct":
            assert row["correct"] is True, row
        else:
            assert row["correct"] is False and row["reason"] in ("timeout", "runtime_error", "memory"), row


def test_fork_bomb_does_not_sink_a_correct_sample_beside_it() -> None:
    _check_pool(_run_here("pool"))


def test_fork_bomb_does_not_sink_a_correct_sample_beside_it_as_normal_user() -> None:
    _check_pool(_run_unprivileged("pool"))


@pytest.fixture()
def bwrap() -> None:
    need(shutil.which("bwrap") is not None, "bubblewrap (bwrap) is not installed (scripts/setup.sh installs it)")


def test_self_test_passes_here(bwrap: None) -> None:
    assert selftest.self_test() is None


def test_view_holds_only_the_interpreter_and_its_stdlib(bwrap: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary")
    sites = list(view(sandbox.interpreter()).masks)
    program = (
        "import json, os, sys, importlib.util\n"
        f"sites = {sites!r}\n"
        f"host = {[str(REPO), str(REPO / 'data'), str(Path(sandbox.__file__).parent), '/run', '/var/run', '/home', '/etc/passwd', '/tmp/.X11-unix']!r}\n"
        "print(json.dumps({'uid': os.getuid(), 'env': sorted(os.environ), 'cwd': os.getcwd(),\n"
        "  'site_contents': [os.listdir(p) for p in sites], 'visible': [p for p in host if os.path.exists(p)],\n"
        "  'pip': importlib.util.find_spec('pip') is not None, 'distill': importlib.util.find_spec('distill') is not None,\n"
        "  'scratch_bytes': os.statvfs('/tmp').f_blocks * os.statvfs('/tmp').f_frsize,\n"
        "  'root_entries': sorted(os.listdir('/'))}))\n")
    result = run_role("stdio", {}, sandbox.Limits(timeout=10, scratch_mb=8), program=program)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["uid"] != 0
    assert set(seen["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "PWD"}
    assert seen["cwd"] == "/tmp"
    assert all(contents == [] for contents in seen["site_contents"]), seen
    assert seen["visible"] == [] and not seen["pip"] and not seen["distill"], seen
    assert seen["scratch_bytes"] == 8 << 20
    assert "run" not in seen["root_entries"] and "home" not in seen["root_entries"], seen


def test_scratch_is_private_to_each_run(bwrap: None) -> None:
    first = run_role("stdio", {}, sandbox.Limits(timeout=10), program="open('/tmp/mark', 'w').write('x')\nprint(1)")
    second = run_role("stdio", {}, sandbox.Limits(timeout=10), program="import os\nprint(os.listdir('/tmp'))")
    assert first.stdout.strip() == "1" and second.stdout.strip() == "[]", (first, second)


def _python_under_tmp(tmp: Path) -> str:
    """A copy of an interpreter under /tmp (hard links where possible), as some CI runners have."""
    real = "/usr/bin/python3.11" if os.path.exists("/usr/bin/python3.11") else sandbox.interpreter()
    probe = json.loads(subprocess.run([real, "-I", "-S", "-c", "import sys, json, sysconfig; print(json.dumps("
                                       "[sys.prefix, sys.path, sysconfig.get_config_var('LDLIBRARY') or '']))"],
                                      capture_output=True, text=True, check=True).stdout)
    prefix, paths, _ = probe
    root = tmp / "env"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(real, root / "bin" / os.path.basename(real))
    for path in paths:
        if os.path.isdir(path) and path.startswith(prefix):
            target = root / os.path.relpath(path, prefix)
            if not target.exists():
                try:
                    shutil.copytree(path, target, copy_function=os.link, symlinks=True,
                                    ignore=shutil.ignore_patterns("site-packages", "dist-packages", "test"))
                except OSError:
                    shutil.copytree(path, target, symlinks=True, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("site-packages", "dist-packages", "test"))
    for lib in Path(prefix, "lib").glob("libpython*.so*"):
        shutil.copy2(lib, root / "lib" / lib.name)
    return str(root / "bin" / os.path.basename(real))


def test_an_interpreter_under_tmp_works_and_nothing_else_of_tmp_shows(bwrap: None) -> None:
    tmp = Path("/tmp") / f"distill-ci-{os.getpid()}"
    try:
        python = _python_under_tmp(tmp)
        canary = tmp / "canary.txt"
        canary.write_text("secret")
        assert selftest.self_test(python) is None
        program = f"import os, sys\nprint(sys.executable)\nprint(os.path.exists({str(canary)!r}), os.listdir('/tmp'))\n"
        result = run_role("stdio", {}, sandbox.Limits(timeout=20), program=program, python=python)
        assert result.returncode == 0, result.stderr
        executable, seen = result.stdout.splitlines()
        assert executable == python
        assert seen == f"False {[tmp.name]}"  # only the folders leading to the interpreter
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_failed_sandbox_is_a_sandbox_error_not_a_wrong_answer(bwrap: None, monkeypatch: pytest.MonkeyPatch) -> None:
    real = sandbox.bwrap_command
    monkeypatch.setattr(sandbox, "bwrap_command", lambda *a: real(*a)[:-1] + ["--no-such-option", "--"])
    verdict = verify_code(ADD, RIGHT)
    assert verdict.correct is None and verdict.reason == "sandbox_error", verdict
    assert "--no-such-option" in verdict.details["error"]


def test_a_program_cannot_pass_itself_off_as_a_sandbox_failure(bwrap: None) -> None:
    program = "import sys\nsys.stderr.write('bwrap: Creating new namespace failed\\n')\nsys.exit(1)\n"
    verdict = verify_code(ADD, Sample("c", 0, "", f"```python\n{program}```"))
    assert verdict.correct is False and verdict.reason == "runtime_error", verdict


@pytest.fixture()
def no_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH without bubblewrap (the interpreters stay reachable), and no cached self-test."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("setpriv", "python3"):
        if shutil.which(tool):
            os.symlink(shutil.which(tool), bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(selftest, "_CHECKED", {})
    assert shutil.which("bwrap") is None


def test_without_bubblewrap_code_verification_refuses_in_one_line(no_bwrap: None) -> None:
    with pytest.raises(sandbox.SandboxUnavailable) as caught:
        verify_code(ADD, RIGHT)
    message = str(caught.value)
    assert "\n" not in message
    assert "bubblewrap (bwrap) is not installed" in message and "apt-get install bubblewrap" in message
    assert "--unsafe-no-sandbox" in message


def test_without_bubblewrap_the_pool_refuses_before_any_work(no_bwrap: None) -> None:
    from distill.verify import verify_stream

    with pytest.raises(sandbox.SandboxUnavailable):
        next(verify_stream({"c": ADD}, [RIGHT], workers=2))


def test_without_bubblewrap_math_still_verifies(no_bwrap: None) -> None:
    from distill.verify import verify_samples

    math = Problem(id="m", prompt="1+1?", answer="2")
    judged = list(verify_samples({"m": math, "c": ADD}, [Sample("m", 0, "", "\\boxed{2}")], workers=2))
    assert judged[0].correct is True


def test_the_unsafe_opt_in_runs_without_a_sandbox_and_says_so(no_bwrap: None, caplog: pytest.LogCaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selftest, "_WARNED_UNSAFE", False)
    with caplog.at_level("WARNING", logger="distill.verify.selftest"):
        verdict = verify_code(ADD, RIGHT, unsafe_no_sandbox=True)
        wrong = verify_code(ADD, Sample("c", 1, "", "```python\ndef f():\n    return 2\n```"), unsafe_no_sandbox=True)
    assert verdict.correct is True and wrong.correct is False
    assert "UNSAFE" in caplog.text and "WITHOUT a sandbox" in caplog.text
    for v in (verdict, wrong):
        assert v.details["sandbox"] == "none" and v.details["unsafe_no_sandbox"] is True
