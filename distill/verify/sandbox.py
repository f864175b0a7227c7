"""Start untrusted Python under bubblewrap, and refuse to verify code when bubblewrap cannot be trusted.

What a sandboxed program sees and may do:

- a read-only view of the interpreter, its standard library (every site-packages/dist-packages folder
  masked by an empty tmpfs) and the shared libraries it loads, found by `view()`; nothing else of the
  host: no /etc (but ld.so.cache), no /run, /var/run, $XDG_RUNTIME_DIR or /tmp/.X11-unix, no home, no
  problem set, no file of the installed `distill` package;
- a private scratch tmpfs at /tmp (also HOME and the working directory) of `Limits.scratch_mb`;
- its own PID, network, IPC and UTS namespaces: no network at all, and killing the namespace's first
  process ends every process the program started, `setsid` or not, before the verdict is returned;
- an unprivileged uid: when we are root, a distinct uid per sandbox (`_uid`), so that the process limit
  (RLIMIT_NPROC counts per uid) of one sample is not spent by another sample's fork bomb; when we are
  not, bubblewrap's user namespace does the same (the kernel counts processes per user namespace);
- resource limits (CPU seconds, address space, file size, open files, processes), no capabilities,
  no_new_privs (bubblewrap sets it), a scrubbed environment, a new session (no terminal).

`distill.verify.selftest.ensure_sandbox()` checks all this once per process and raises
`SandboxUnavailable` (one line: what failed, how to install bubblewrap) when bubblewrap is missing or
fails; the only way past is the caller's explicit `unsafe_no_sandbox=True`, which starts the same
runners as plain processes (`launch(..., unsafe=True)`); verdicts then say `sandbox: "none"`.
"""

from __future__ import annotations

import binascii
import ctypes
import functools
import importlib.resources
import itertools
import json
import logging
import marshal
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from distill.errors import DistillError
from distill.verify.view import view

log = logging.getLogger(__name__)

SCRATCH = "/tmp"
"""The program's writable scratch, working directory and HOME inside the sandbox."""
INSTALL_HINT = ("install bubblewrap >= 0.7 (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install "
                "bubblewrap), or accept running untrusted programs without isolation with --unsafe-no-sandbox "
                "(config: verify.unsafe_no_sandbox: true)")
ENV = {"PATH": "/usr/bin:/bin", "HOME": SCRATCH, "TMPDIR": SCRATCH, "LANG": "C.UTF-8"}
"""The whole environment of a sandboxed program."""
_UID_BASE = 0x50000000


class SandboxUnavailable(DistillError):
    """Code cannot be verified: bubblewrap is missing or failed its self-test (and no unsafe opt-in)."""


@dataclass
class Limits:
    """What one sandboxed sample may use."""

    timeout: float = 10.0
    """Wall-clock seconds for the whole sample (both processes, all tests), then everything is killed."""
    memory_mb: int = 2048
    """Address-space limit (RLIMIT_AS) in MiB, per process."""
    file_size_mb: int = 16
    """Largest file the program may write (RLIMIT_FSIZE), MiB."""
    open_files: int = 64
    """Open file descriptors (RLIMIT_NOFILE)."""
    processes: int = 16
    """Processes the program may run at once (RLIMIT_NPROC for its own uid or user namespace)."""
    output_bytes: int = 1 << 20
    """Bytes of output kept per stream; more kills the program."""
    scratch_mb: int = 64
    """Size of the private tmpfs at /tmp."""

    def rlimits(self) -> dict[str, int]:
        """The limits `inside.enter` applies, by name."""
        return {"cpu": int(self.timeout) + 1, "as": self.memory_mb << 20, "fsize": self.file_size_mb << 20,
                "nofile": self.open_files, "nproc": self.processes, "core": 0}


@functools.lru_cache(maxsize=1)
def runner_source() -> str:
    """The `-c` program of every sandboxed interpreter: wire.py, then inside.py (stdlib only, both)."""
    here = importlib.resources.files("distill.verify")
    return here.joinpath("wire.py").read_text(encoding="utf-8") + "\n" + \
        here.joinpath("inside.py").read_text(encoding="utf-8")


_BOOT = "import binascii,marshal,sys;exec(marshal.loads(binascii.a2b_base64(sys.argv.pop(1))))"


@functools.lru_cache(maxsize=1)
def _runner_code() -> str:
    return binascii.b2a_base64(marshal.dumps(compile(runner_source(), "<sandbox-runner>", "exec")), newline=False).decode()


def runner_command(python: str, role: str, config: dict) -> list[str]:
    """`python -I -S -c ... ROLE CONFIG`: this interpreter gets the runner compiled once (marshal; compiling
    600 lines costs each sandbox ~15 ms), another interpreter gets its source."""
    if python == interpreter():
        return [python, "-I", "-S", "-c", _BOOT, _runner_code(), role, json.dumps(config)]
    return [python, "-I", "-S", "-c", runner_source(), role, json.dumps(config)]


def interpreter() -> str:
    """The real interpreter behind this process (a venv's python is a link to it)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


# Launching ------------------------------------------------------------------------------------------

_counter = itertools.count()
_prctl = None


def _uid() -> int:
    """A uid of its own for the next sandbox when we are root (-1 otherwise: the user namespace separates).

    Distinct between live sandboxes: one pid per supervising process, and 32 in turn within it (each
    sandbox's processes are all gone before its supervisor returns).
    """
    if os.geteuid() != 0:
        return -1
    return _UID_BASE + ((os.getpid() & 0x3FFFFF) << 5) + next(_counter) % 32


def _processes_of(uid: int) -> int:
    """How many processes `uid` runs now (from /proc)."""
    count = 0
    for entry in os.listdir("/proc"):
        try:
            count += entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid
        except OSError:
            continue
    return count


def _die_with_parent() -> None:
    # Runs in an unsafe run's child between fork and exec: it dies with the process that started it (a
    # pool worker killed by the watchdog, say). Under bubblewrap, --die-with-parent does this.
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def bwrap_command(python: str, limits: Limits, status_fd: int) -> list[str]:
    """The bubblewrap command line up to `--`, for a sandbox running `python`."""
    cmd = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc",
           "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox", "--json-status-fd", str(status_fd)]
    if os.geteuid() == 0:
        # No user namespace as root: the runner needs these two capabilities to switch to its own uid,
        # then holds none (setresuid away from 0 clears them).
        cmd += ["--cap-add", "CAP_SETUID,CAP_SETGID"]
    else:
        cmd += ["--unshare-user"]
    # The scratch first: an interpreter that lives under /tmp (a CI checkout) is then bound on top of it.
    cmd += ["--perms", "1777", "--size", str(limits.scratch_mb << 20), "--tmpfs", SCRATCH]
    cmd += view(python).args()
    cmd += ["--dev", "/dev", "--proc", "/proc", "--remount-ro", "/", "--chdir", SCRATCH, "--clearenv"]
    for key, value in ENV.items():
        cmd += ["--setenv", key, value]
    return cmd + ["--"]


@dataclass
class Launched:
    """One started sandbox (or, unsafe, one plain process) and what is needed to end it."""

    proc: subprocess.Popen
    sandboxed: bool
    status_fd: int | None = None  # bubblewrap's JSON status (read end), sandboxed only
    status_text: str = ""
    child_pid: int | None = None  # the PID namespace's first process, from bubblewrap
    pidfd: int | None = None
    scratch: str | None = None  # unsafe only: the temporary working directory
    fds: list[int] = field(default_factory=list)

    def read_status(self) -> None:
        """Take in what bubblewrap has said so far (non-blocking); learn the namespace's first process."""
        if self.status_fd is None:
            return
        try:
            chunk = os.read(self.status_fd, 4096)
        except BlockingIOError:
            return
        if not chunk:
            os.close(self.status_fd)
            self.status_fd = None
            return
        self.status_text += chunk.decode("utf-8", "replace")
        if self.child_pid is None:
            for line in self.status_text.splitlines():
                try:
                    pid = json.loads(line).get("child-pid")
                except (ValueError, AttributeError):
                    continue
                if isinstance(pid, int):
                    self.child_pid = pid
                    try:
                        self.pidfd = os.pidfd_open(pid)
                    except (OSError, AttributeError):
                        self.pidfd = None
                    break


def launch(role: str, config: dict, limits: Limits, pass_fds: list[int], unsafe: bool = False,
           python: str | None = None, stdin: int | None = None, stdout: int | None = None,
           stderr: int | None = None) -> Launched:
    """Start `inside.py`'s `role` with `config` (fd numbers, limits, uid) in a new sandbox.

    `stdin`/`stdout`/`stderr` are fds for the program's standard streams (default /dev/null).
    """
    global _prctl
    python = python or interpreter()
    rlimits = limits.rlimits()
    if unsafe and os.geteuid() != 0:
        # No user namespace to count in: RLIMIT_NPROC counts every process of this user, so leave room
        # for those already running.
        rlimits["nproc"] += _processes_of(os.getuid())
    config = {**config, "limits": rlimits, "uid": -1 if unsafe else _uid()}
    program = runner_command(python, role, config)
    streams = {"stdin": subprocess.DEVNULL if stdin is None else stdin,
               "stdout": subprocess.DEVNULL if stdout is None else stdout,
               "stderr": subprocess.DEVNULL if stderr is None else stderr}
    if unsafe:
        if _prctl is None:
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        scratch = tempfile.mkdtemp(prefix="distill-unsafe-")
        env = {**ENV, "HOME": scratch, "TMPDIR": scratch}
        proc = subprocess.Popen(program, cwd=scratch, env=env, pass_fds=pass_fds, start_new_session=True,
                                preexec_fn=_die_with_parent, **streams)  # type: ignore[arg-type]
        return Launched(proc, sandboxed=False, scratch=scratch)
    status_r, status_w = os.pipe()
    os.set_blocking(status_r, False)
    try:
        # No preexec_fn (it would rule out vfork, and fork copies a big process's page tables): bubblewrap's
        # --die-with-parent already ties it, and the sandbox, to this process.
        proc = subprocess.Popen(bwrap_command(python, limits, status_w) + program, cwd="/",
                                env={"PATH": os.environ.get("PATH", ENV["PATH"])}, pass_fds=[*pass_fds, status_w],
                                start_new_session=True, **streams)  # type: ignore[arg-type]
    except BaseException:
        os.close(status_r)
        raise
    finally:
        os.close(status_w)
    return Launched(proc, sandboxed=True, status_fd=status_r)


def _kill_namespace(run: Launched) -> None:
    run.read_status()
    if run.pidfd is not None:
        try:
            signal.pidfd_send_signal(run.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
    elif run.child_pid is not None and run.proc.poll() is None:
        try:
            os.kill(run.child_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop(run: Launched, grace: float = 10.0) -> None:
    """Kill everything the sandbox runs and return once it is all gone.

    The namespace's first process (bubblewrap's init, known from its JSON status) gets SIGKILL; the
    kernel then kills every process in the namespace, and the init exits only after the last of them,
    so waiting for the init (through its pidfd: bubblewrap's outer process may exit first) waits for all.
    """
    _kill_namespace(run)
    if not run.sandboxed:
        try:
            os.killpg(run.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        run.proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        run.proc.kill()
        try:
            run.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.error("sandbox: pid %d did not end after SIGKILL", run.proc.pid)
    _kill_namespace(run)  # bubblewrap may have named its init only just now
    if run.pidfd is not None and not select.select([run.pidfd], [], [], grace)[0]:
        log.error("sandbox: the namespace of pid %s did not end after SIGKILL", run.child_pid)
    for fd in (run.pidfd, run.status_fd):
        if fd is not None:
            os.close(fd)
    run.pidfd = run.status_fd = None
    if run.scratch:
        shutil.rmtree(run.scratch, ignore_errors=True)
