"""Run a test script as an unprivileged user: CI runs the tests as root, and the sandbox must hold (and
start) for a normal user as well.

The script runs under `setpriv --reuid/--regid` (util-linux) with a HOME of its own, from a copy of
the `distill.verify` package (and the modules it needs) that the user can read, under the first
interpreter the user can execute (a venv under /root is out of reach; the verifier needs only the
standard library). Where this cannot be arranged the test fails in CI (`CI=true`) and skips elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from need import need

UID = 65534
REPO = Path(__file__).resolve().parents[2]
PACKAGE = ["distill/__init__.py", "distill/errors.py", "distill/records.py", "distill/verify"]


def _interpreter(uid: int) -> str | None:
    from distill.verify.sandbox import interpreter

    for python in (interpreter(), "/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(python):
            probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", python, "-I",
                                    "-c", "import json, multiprocessing, os, sys; os.listdir(os.path.dirname(os.__file__)); "
                                    "os.stat(sys.executable)"], capture_output=True, timeout=60, cwd="/")
            if probe.returncode == 0:
                return python
    return None


def run_script(script: str, args: list[str] | None = None, stdin: str = "", env: dict | None = None,
               timeout: float = 240) -> list[dict]:
    """Run tests/verify/`script` as the unprivileged user (or as ourselves when we are not root) and return
    the JSON objects it prints, one per line."""
    need(shutil.which("bwrap") is not None, "bubblewrap (bwrap) is not installed")
    work = Path(tempfile.mkdtemp(prefix="distill-unprivileged-"))
    try:
        for part in PACKAGE:
            source, target = REPO / part, work / part
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(source, target)
        (work / "tests" / "verify").mkdir(parents=True)
        shutil.copy(REPO / "tests" / "verify" / script, work / "tests" / "verify" / script)
        home = work / "home"
        home.mkdir()
        command = [sys.executable]
        if os.geteuid() == 0:
            need(shutil.which("setpriv") is not None, "setpriv (util-linux) is missing: cannot become a normal user")
            for folder, _, files in os.walk(work):
                os.chmod(folder, 0o755)
                for name in files:
                    os.chmod(os.path.join(folder, name), 0o644)
            os.chmod(work, 0o755)
            os.chown(home, UID, UID)
            python = _interpreter(UID)
            need(python is not None, f"no interpreter that uid {UID} can run")
            command = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", python]  # type: ignore[list-item]
        proc = subprocess.run([*command, "-I", str(work / "tests" / "verify" / script), *(args or [])], input=stdin,
                              capture_output=True, text=True, timeout=timeout, cwd=work,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
                                   "LANG": "C.UTF-8", **(env or {})})
        assert proc.returncode == 0, proc.stderr[-3000:]
        return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
