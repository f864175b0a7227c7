"""Hostile programs and a runner that checks the sandbox contains each one.

Run by tests/verify/test_sandbox.py as a child process, as whoever runs the tests (root in CI) and as
an unprivileged user (`python tests/verify/hostile.py [cases|pool]` prints one JSON line per case).
The runner makes itself a child subreaper, so a process a sandbox leaves behind would become its
child: "no process left behind" is checked over its whole process tree.
"""

from __future__ import annotations

import ctypes
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


def _descendants() -> list[int]:
    """Every live process below this one (with the subreaper set, orphans of the sandboxes land here).

    Zombies are reaped first: bubblewrap's namespace init can end after its parent, and a dead
    process, once reaped, is no process left behind.
    """
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                if fields[0] != "Z":
                    parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - mine
        mine |= frontier
    return sorted(mine)


def _listen() -> tuple[list[socket.socket], dict, list[bytes]]:
    """A TCP listener on the host's 127.0.0.1, a Unix socket in the host's /tmp and an abstract one."""
    received: list[bytes] = []
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    unix_path = os.path.join(tempfile.mkdtemp(prefix="distill-hostile-"), "host.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    os.chmod(os.path.dirname(unix_path), 0o755)
    os.chmod(unix_path, 0o777)
    abstract_name = "\0distill-hostile-" + os.urandom(4).hex()
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(abstract_name)
    servers = [tcp, unix, abstract]
    for server in servers:
        server.listen(5)
        server.settimeout(0.2)

    def accept(server: socket.socket) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            received.append(b"connected")
            conn.close()

    for server in servers:
        threading.Thread(target=accept, args=(server,), daemon=True).start()
    where = {"port": tcp.getsockname()[1], "unix": unix_path, "abstract": abstract_name}
    return servers, where, received


def cases(paths: dict) -> dict[str, tuple[str, set[str]]]:
    """name -> (program, acceptable reasons); `paths` names the host files and sockets they go after."""
    return {
        "infinite_loop": ("while True:\n    pass\n", {"timeout"}),
        "allocate_10gb": ("x = bytearray(10 * 1024 ** 3)\nprint(len(x))\n", {"memory"}),
        "fork_bomb": ("import os\nwhile True:\n    os.fork()\n", {"runtime_error", "timeout", "memory"}),
        "multiprocessing_bomb": (
            "import multiprocessing as mp, time\n"
            "def spin():\n    while True:\n        mp.Process(target=spin).start()\n"
            "while True:\n    mp.Process(target=spin).start()\n", {"runtime_error", "timeout", "memory"}),
        "socket_to_localhost": (
            f"import socket\ns = socket.create_connection(('127.0.0.1', {paths['port']}), timeout=1)\nprint('connected')\n",
            {"runtime_error"}),
        "host_unix_socket": (
            f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({paths['unix']!r})\n", {"runtime_error"}),
        "abstract_unix_socket": (
            f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({paths['abstract']!r})\n", {"runtime_error"}),
        "write_outside_scratch": (f"open({paths['outside']!r}, 'w').write('pwned')\n", {"runtime_error"}),
        "write_host_tmp": (f"open({paths['host_tmp']!r}, 'w').write('pwned')\nraise SystemExit(3)\n",
                           {"runtime_error"}),
        "read_host_token": (f"print(open({paths['token']!r}).read())\n", {"runtime_error"}),
        "write_host_bashrc": (f"open({paths['bashrc']!r}, 'a').write('pwned')\n", {"runtime_error"}),
        "read_problem_set": (f"print(open({paths['problem_set']!r}).read()[:100])\n", {"runtime_error"}),
        "fill_scratch": ("for i in range(20):\n    with open(f'/tmp/fill{i}', 'wb') as f:\n"
                         "        for _ in range(10):\n            f.write(b'0' * (1 << 20))\n", {"runtime_error"}),
        "read_canary_secret": (
            "import os\nassert 'DISTILL_CANARY' not in os.environ, os.environ['DISTILL_CANARY']\n"
            f"assert {CANARY!r} not in open('/proc/self/environ').read()\nraise SystemExit(3)\n", {"runtime_error"}),
        "kill_parent": ("import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(0.2)\nraise SystemExit(3)\n",
                        {"runtime_error"}),
        "output_flood": ("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", {"runtime_error", "timeout"}),
        "setsid_orphan": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nraise SystemExit(3)\n",
                          {"runtime_error"}),
        "double_fork_orphan": ("import os, time\nif os.fork() == 0:\n    if os.fork() == 0:\n        os.setsid()\n"
                               "        time.sleep(60)\n    os._exit(0)\nraise SystemExit(3)\n", {"runtime_error"}),
    }


def _problem():
    from distill.records import Problem

    return Problem(id="h", prompt="hostile", kind="code",
                   tests={"type": "asserts", "asserts": ["assert True"], "setup": "", "entry_point": "f"})


def run_cases() -> list[dict]:
    """Run every case through the code verifier; one dict per case with what was observed."""
    from distill.records import Sample
    from distill.verify.code import verify_code
    from distill.verify.sandbox import Limits

    os.environ["DISTILL_CANARY"] = CANARY
    limits = Limits(timeout=TIMEOUT, memory_mb=1024, output_bytes=1 << 20)
    results = []
    scratch_root = "/var/tmp" if os.path.isdir("/var/tmp") else None  # outside /tmp: the view alone must hide it
    home = tempfile.mkdtemp(prefix="distill-hostile-home-", dir=scratch_root)
    os.chmod(home, 0o777)
    os.makedirs(os.path.join(home, ".cache", "huggingface"))
    token = os.path.join(home, ".cache", "huggingface", "token")
    bashrc = os.path.join(home, ".bashrc")
    for path, text in ((token, CANARY), (bashrc, "# bashrc\n")):
        with open(path, "w") as handle:
            handle.write(text)
    problem_set = os.environ.get("DISTILL_PROBLEM_SET") or os.path.join(home, "problems.jsonl")
    if not os.path.exists(problem_set):
        with open(problem_set, "w") as handle:
            handle.write('{"id": "x", "prompt": "secret reference"}\n')
    for folder, _, files in os.walk(home):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o666)
    # Outside /tmp (the sandbox has its own) and writable by anyone: only the sandbox may stop the write.
    outside_dir = tempfile.mkdtemp(dir=scratch_root)
    os.chmod(outside_dir, 0o777)
    servers, where, received = _listen()
    paths = {**where, "outside": os.path.join(outside_dir, "outside.txt"), "token": token, "bashrc": bashrc,
             "problem_set": problem_set, "host_tmp": os.path.join("/tmp", "distill-hostile-" + os.urandom(4).hex())}
    try:
        for name, (program, reasons) in cases(paths).items():
            started = time.monotonic()
            verdict = verify_code(_problem(), Sample("h", 0, "", f"```python\n{program}```"), limits=limits)
            seconds = time.monotonic() - started
            leftover = _descendants()
            with open(bashrc) as handle:
                bashrc_intact = handle.read() == "# bashrc\n"
            results.append({
                "case": name, "correct": verdict.correct, "reason": verdict.reason, "allowed": sorted(reasons),
                "seconds": round(seconds, 2), "limit": TIMEOUT + MARGIN, "leftover": leftover,
                "outside_written": os.path.exists(paths["outside"]) or os.path.exists(paths["host_tmp"]),
                "bashrc_intact": bashrc_intact, "connected": bool(received), "sandbox": verdict.details.get("sandbox"),
                "output_capped": bool(verdict.details.get("output_capped")), "error": verdict.details.get("error"),
            })
    finally:
        for server in servers:
            server.close()
    return results


def run_pool() -> list[dict]:
    """Fork bombs and correct samples judged side by side by a pool of 2: one row per sample."""
    from distill.records import Problem, Sample
    from distill.verify import code as vcode
    from distill.verify import verify_stream
    from distill.verify.sandbox import Limits

    problem = Problem(id="add", prompt="add", kind="code",
                      tests={"type": "asserts", "asserts": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"],
                             "setup": "", "entry_point": "add"})
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    # A correct program that needs processes of its own: a shared process budget would fail it.
    correct = ("import os\nfor _ in range(4):\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n"
               "    os.waitpid(pid, 0)\ndef add(a, b):\n    return a + b\n")
    kinds = ["bomb", "correct", "bomb", "correct", "correct", "bomb", "correct", "correct"]
    samples = [Sample("add", i, "", f"```python\n{bomb if k == 'bomb' else correct}```") for i, k in enumerate(kinds)]
    vcode.LIMITS = Limits(timeout=TIMEOUT, memory_mb=1024)
    rows = []
    for kind, (_, verdict) in zip(kinds, verify_stream({"add": problem}, samples, workers=2, batch_size=1), strict=True):
        rows.append({"kind": kind, "correct": verdict.correct, "reason": verdict.reason,
                     "error": verdict.details.get("error")})
    return rows


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans of the sandboxes would come here
    mode = sys.argv[1] if len(sys.argv) > 1 else "cases"
    for row in (run_pool() if mode == "pool" else run_cases()):
        print(json.dumps(row))
