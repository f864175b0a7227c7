"""Hostile programs and a runner that checks the sandbox contains each one.

Run by tests/verify/test_sandbox.py in-process (as whoever runs the tests, root in CI) and, as a
normal user, in a child process under `setpriv --reuid=65534` (`python tests/verify/hostile.py`
prints one JSON line per case).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import time

TIMEOUT = 3.0
MARGIN = 2.5
CANARY = "distill-canary-secret-8f1c"


MARKER = "# distill-hostile-case-" + os.urandom(6).hex()


def leftover_processes() -> list[int]:
    """Processes still running a hostile case: their working directory holds a main.py with our marker."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cwd/main.py", encoding="utf-8", errors="replace") as handle:
                if MARKER in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _listen() -> tuple[socket.socket, int, list[bytes]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    received: list[bytes] = []

    def accept() -> None:
        deadline = time.monotonic() + TIMEOUT + MARGIN
        while time.monotonic() < deadline:
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            received.append(b"connected")
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1], received


def cases(outside: str, port: int) -> dict[str, tuple[str, set[str]]]:
    """name -> (program, acceptable reasons)."""
    return {
        "infinite_loop": ("while True:\n    pass\n", {"timeout"}),
        "allocate_10gb": ("x = bytearray(10 * 1024 ** 3)\nprint(len(x))\n", {"memory"}),
        "fork_bomb": ("import os\nwhile True:\n    os.fork()\n", {"runtime_error", "timeout", "memory"}),
        "multiprocessing_bomb": (
            "import multiprocessing as mp, time\n"
            "def spin():\n    while True:\n        mp.Process(target=spin).start()\n"
            "while True:\n    mp.Process(target=spin).start()\n", {"runtime_error", "timeout", "memory"}),
        "socket_to_localhost": (
            f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('connected')\n",
            {"runtime_error"}),
        "write_outside_scratch": (f"open({outside!r}, 'w').write('pwned')\n", {"runtime_error"}),
        "read_canary_secret": (
            "import os\nassert 'DISTILL_CANARY' not in os.environ, os.environ['DISTILL_CANARY']\n"
            f"assert {CANARY!r} not in open('/proc/self/environ').read()\nraise SystemExit(3)\n", {"runtime_error"}),
        "kill_parent": ("import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(0.2)\nraise SystemExit(3)\n",
                        {"runtime_error"}),
        "output_flood": ("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", {"runtime_error", "timeout"}),
        "setsid_orphan": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nraise SystemExit(3)\n",
                          {"runtime_error"}),
    }


def run_all() -> list[dict]:
    """Run every case through the code verifier; return one dict per case with what was observed."""
    from distill.records import Problem, Sample
    from distill.verify.code import verify_code
    from distill.verify.sandbox import Limits

    os.environ["DISTILL_CANARY"] = CANARY
    limits = Limits(timeout=TIMEOUT, memory_mb=1024, output_bytes=1 << 20)
    problem = Problem(id="h", prompt="hostile", kind="code",
                      tests={"type": "asserts", "asserts": ["assert True"], "setup": "", "entry_point": "f"})
    results = []
    # Outside /tmp (the sandbox has its own) and writable by anyone: only the sandbox may stop the write.
    with tempfile.TemporaryDirectory(dir="/var/tmp" if os.path.isdir("/var/tmp") else None) as outside_dir:
        os.chmod(outside_dir, 0o777)
        outside = os.path.join(outside_dir, "outside.txt")
        server, port, received = _listen()
        try:
            for name, (program, reasons) in cases(outside, port).items():
                started = time.monotonic()
                verdict = verify_code(problem, Sample("h", 0, "", f"```python\n{MARKER}\n{program}```"), limits=limits)
                seconds = time.monotonic() - started
                time.sleep(0.1)
                leftover = leftover_processes()
                results.append({
                    "case": name, "correct": verdict.correct, "reason": verdict.reason, "allowed": sorted(reasons),
                    "seconds": round(seconds, 2), "limit": TIMEOUT + MARGIN, "leftover": leftover,
                    "outside_written": os.path.exists(outside), "connected": bool(received),
                    "network_isolated": verdict.details.get("network_isolated"),
                    "output_capped": bool(verdict.details.get("output_capped")), "error": verdict.details.get("error"),
                })
        finally:
            server.close()
    return results


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    for row in run_all():
        print(json.dumps(row))
