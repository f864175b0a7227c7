"""The sandbox's self-test, and the refusal to verify code without a sandbox that passes it.

`ensure_sandbox()` runs `self_test` once per process and interpreter, and raises `SandboxUnavailable`
(one line: what failed, and how to install bubblewrap) unless the caller opted out with
`unsafe_no_sandbox=True`, which is logged loudly once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess

from distill.verify.harness import run_role
from distill.verify.sandbox import ENV, INSTALL_HINT, SCRATCH, Limits, SandboxUnavailable, interpreter
from distill.verify.view import view

log = logging.getLogger(__name__)

_CHECKED: dict[str, str | None] = {}
_WARNED_UNSAFE = False
_ALLOWED_ENV = set(ENV) | {"PWD"}


def _hidden_paths(python: str) -> list[str]:
    """Host paths that must not be visible inside (those that exist here and hold no part of the view)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    home = os.path.expanduser("~")
    candidates = [package, os.path.join(os.path.dirname(package), "data"), os.getcwd(), home,
                  os.path.join(home, ".bashrc"), os.path.join(home, ".cache"), os.path.join(home, ".ssh"),
                  "/run", "/var/run", "/tmp/.X11-unix", "/etc/passwd", "/home",
                  os.environ.get("XDG_RUNTIME_DIR") or "/run/user"]
    shown = list(view(python).binds) + [link for link, _ in view(python).symlinks]
    return [p for p in dict.fromkeys(candidates)
            if p and os.path.exists(p) and not any(s == p or s.startswith(p.rstrip("/") + "/") for s in shown)
            and p != SCRATCH]


def self_test(python: str | None = None) -> str | None:
    """None when a sandbox here is what `distill.verify.sandbox` says it is; else what failed, in a few words.

    Checks, from inside a sandbox: the uid is not 0 and no capability is left, the network is unreachable
    (a listening socket on the host's 127.0.0.1 and any interface but loopback), / is read-only, the
    scratch quota holds, the program's processes are alone in their PID namespace, it can still start a
    process, the host paths of `_hidden_paths` are not visible, and the environment is scrubbed. Cached
    per interpreter.
    """
    python = python or interpreter()
    if python in _CHECKED:
        return _CHECKED[python]
    if shutil.which("bwrap") is None:
        reason: str | None = "bubblewrap (bwrap) is not installed or not on PATH"
    else:
        try:
            reason = _self_test(python)
        except (OSError, ValueError, RuntimeError, subprocess.SubprocessError) as err:
            reason = f"the self-test could not run: {err}"
    _CHECKED[python] = reason
    return reason


def _self_test(python: str) -> str | None:
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        config = {"port": listener.getsockname()[1], "fill_mb": 3, "hidden": _hidden_paths(python)}
        result = run_role("selftest", config, Limits(timeout=30, scratch_mb=1, memory_mb=1024), python=python)
    finally:
        listener.close()
    if not result.ready:
        error = result.launcher_error or result.stderr.strip()[-300:] or f"exit status {result.returncode}"
        if "--size" in error:
            error += " (the scratch quota needs bubblewrap >= 0.7)"
        return f"bubblewrap does not start: {error}"
    try:
        seen = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"the self-test printed no report ({result.stderr.strip()[-300:]})"
    failures = []
    if 0 in seen["resuid"] or 0 in seen["resgid"]:
        failures.append("the program runs as root")
    if seen["cap_eff"] != "0000000000000000":
        failures.append(f"the program keeps capabilities ({seen['cap_eff']})")
    if seen["connected"] or set(seen["interfaces"]) - {"lo"}:
        failures.append("the network is reachable")
    if seen["root_writable"]:
        failures.append("/ is writable")
    if not seen["quota_held"]:
        failures.append("the scratch quota does not hold")
    if set(seen["pids"]) - {1, seen["self"]}:
        failures.append(f"other processes are visible ({seen['pids']})")
    if seen["visible"]:
        failures.append(f"host paths are visible: {', '.join(seen['visible'])}")
    if not seen["can_fork"]:
        failures.append("a program cannot start a process (the process limit counts outside the sandbox: "
                        "Linux >= 5.14 counts it per user namespace)")
    if set(seen["env"]) - _ALLOWED_ENV:
        failures.append("the environment is not scrubbed")
    return "; ".join(failures) or None


def ensure_sandbox(unsafe_no_sandbox: bool = False, python: str | None = None) -> None:
    """Raise `SandboxUnavailable` (one line: what failed, how to install bubblewrap) unless a sandbox here
    passes `self_test` or the caller opted out with `unsafe_no_sandbox` (logged loudly, once)."""
    global _WARNED_UNSAFE
    if unsafe_no_sandbox:
        if not _WARNED_UNSAFE:
            _WARNED_UNSAFE = True
            log.warning("UNSAFE: code samples run WITHOUT a sandbox (--unsafe-no-sandbox): a program can read "
                        "and write your files, reach the network and forge its own verdict. Every verdict "
                        "records sandbox: none.")
        return
    reason = self_test(python)
    if reason is not None:
        raise SandboxUnavailable(f"cannot verify code safely: {reason}; {INSTALL_HINT}")
