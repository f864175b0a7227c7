"""The supervisor's side of a sandboxed run: start the processes, feed them, read them, hold the deadline,
and tear everything down before returning.

- `run_role`: one sandboxed process (a stdio case, the self-test): its input fed through a pipe, its
  output read with a cap;
- `run_pair`: a `check`/`asserts` sample: the candidate's process and the tests' process, joined by two
  pipes the supervisor never touches; the supervisor reads the tests' verdict channel (an fd only the
  tests' process holds) and the candidate's output (capped; a flood kills the sample).

Whether a sandbox started is known from a "ready" line that the runner writes on its own channel before
it reads the program, so nothing a program does can make its run look like a failure of the sandbox.
"""

from __future__ import annotations

import json
import os
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from distill.verify.sandbox import Launched, Limits, launch, stop

VERDICT_BYTES = 1 << 20
"""Most bytes read from a verdict channel (a few hundred per test)."""


class Pump:
    """Non-blocking reads (capped) and writes over a set of pipe fds, driven by `step` until a deadline."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.data: dict[int, bytearray] = {}
        self.caps: dict[int, int] = {}
        self.callbacks: dict[int, Callable[[], None]] = {}
        self.overflowed: set[int] = set()
        self.ended: set[int] = set()
        self.outgoing: dict[int, memoryview] = {}
        self.owned: set[int] = set()  # fds this pump closes (watched ones belong to someone else)

    def read(self, fd: int, cap: int) -> None:
        """Collect what arrives on `fd`, keeping at most `cap` bytes (more marks it overflowed)."""
        os.set_blocking(fd, False)
        self.data[fd], self.caps[fd] = bytearray(), cap
        self.owned.add(fd)
        self.selector.register(fd, selectors.EVENT_READ)

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        """Call `callback` whenever `fd` is readable (it reads for itself)."""
        self.callbacks[fd] = callback
        self.selector.register(fd, selectors.EVENT_READ)

    def write(self, fd: int, payload: bytes) -> None:
        """Write `payload` to `fd` as the reader takes it, then close it."""
        os.set_blocking(fd, False)
        self.outgoing[fd] = memoryview(payload)
        self.owned.add(fd)
        self.selector.register(fd, selectors.EVENT_WRITE)
        if not payload:
            self._finish(fd)

    def _finish(self, fd: int) -> None:
        self.selector.unregister(fd)
        self.outgoing.pop(fd, None)
        if fd in self.owned:
            self.owned.discard(fd)
            os.close(fd)
        self.ended.add(fd)

    def step(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for something to happen and handle it."""
        for key, _ in self.selector.select(max(0.0, timeout)):
            fd = key.fd
            if fd in self.callbacks:
                self.callbacks[fd]()
            elif fd in self.outgoing:
                try:
                    written = os.write(fd, self.outgoing[fd][: 1 << 16])
                except BlockingIOError:
                    continue
                except OSError:  # the reader is gone: nothing more to say to it
                    written = len(self.outgoing[fd])
                self.outgoing[fd] = self.outgoing[fd][written:]
                if not self.outgoing[fd]:
                    self._finish(fd)
            else:
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    self._finish(fd)
                    continue
                room = self.caps[fd] - len(self.data[fd])
                self.data[fd] += chunk[: max(0, room)]
                if len(chunk) > room:
                    self.overflowed.add(fd)

    def text(self, fd: int) -> str:
        """What was read from `fd`, decoded."""
        return bytes(self.data.get(fd, b"")).decode("utf-8", "replace")

    def unwatch(self, fd: int) -> None:
        """Stop calling back for `fd` (its owner closed it)."""
        if fd in self.callbacks:
            self.selector.unregister(fd)
            del self.callbacks[fd]

    def close(self) -> None:
        """Close every fd this pump still owns."""
        self.selector.close()
        for fd in self.owned:
            os.close(fd)
        self.owned.clear()


def _reopenable(*fds: int) -> None:
    """Let the sandbox's uid reopen its standard streams (`open('/dev/stdin')` goes through /proc/self/fd,
    which checks the pipe's own mode; a pipe is 0600 and ours when we make it). Only a process that already
    holds the pipe can reach it that way."""
    for fd in fds:
        os.fchmod(fd, 0o666)


def _watch_status(pump: Pump, run: Launched) -> None:
    if run.status_fd is None:
        return
    fd = run.status_fd

    def take() -> None:
        run.read_status()
        if run.status_fd is None:
            pump.unwatch(fd)

    pump.watch(fd, take)


def _lines(data: bytes | bytearray) -> list[dict]:
    """The JSON objects of a status or verdict channel; a line that is not one becomes {"malformed": ...}."""
    out = []
    for line in bytes(data).split(b"\n"):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        out.append(obj if isinstance(obj, dict) else {"malformed": line[:200].decode("utf-8", "replace")})
    return out


@dataclass
class RoleResult:
    """What one sandboxed process did."""

    ready: bool
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    output_capped: bool = False
    seconds: float = 0.0
    startup: float | None = None
    sandbox: str = "bwrap"
    launcher_error: str | None = None
    """Set when the sandbox did not start (bubblewrap's own message): the program never ran."""


def run_role(role: str, config: dict, limits: Limits, stdin: bytes = b"", program: str | None = None,
             unsafe: bool = False, python: str | None = None) -> RoleResult:
    """Run `inside.py`'s `role` in a sandbox: `program` sent on its program fd, `stdin` fed to its stdin,
    stdout and stderr read (each capped at `limits.output_bytes`; more kills it) until it ends or the
    deadline passes."""
    started = time.monotonic()
    deadline = started + limits.timeout
    status_r, status_w = os.pipe()
    program_r, program_w = os.pipe()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    mine = [status_w, program_r, in_r, out_w, err_w]
    _reopenable(in_r, out_w, err_w)
    try:
        run = launch(role, {**config, "status": status_w, "program": program_r}, limits, [status_w, program_r],
                     unsafe=unsafe, python=python, stdin=in_r, stdout=out_w, stderr=err_w)
    except BaseException:
        for fd in mine + [status_r, program_w, in_w, out_r, err_r]:
            os.close(fd)
        raise
    for fd in mine:
        os.close(fd)
    pump = Pump()
    result = RoleResult(ready=False, sandbox="bwrap" if run.sandboxed else "none")
    try:
        pump.read(status_r, 4096)
        pump.read(out_r, limits.output_bytes)
        pump.read(err_r, limits.output_bytes)
        pump.write(program_w, (program or "").encode("utf-8", "surrogatepass"))
        pump.write(in_w, stdin)
        _watch_status(pump, run)
        while not (out_r in pump.ended and err_r in pump.ended and status_r in pump.ended):
            left = deadline - time.monotonic()
            if left <= 0:
                result.timed_out = True
                break
            pump.step(left)
            if result.startup is None and b"ready" in pump.data[status_r]:
                result.startup = time.monotonic() - started
            if pump.overflowed & {out_r, err_r}:
                result.output_capped = True
                break
    finally:
        stop(run)
        result.ready = any(m.get("ready") is True for m in _lines(pump.data.get(status_r, b"")))
        result.stdout, result.stderr = pump.text(out_r), pump.text(err_r)
        pump.close()
    result.returncode = run.proc.returncode
    result.seconds = time.monotonic() - started
    if not result.ready:
        result.launcher_error = result.stderr.strip()[-500:] or (
            "the sandbox did not start within the time limit" if result.timed_out else f"exit status {result.returncode}")
    return result


@dataclass
class PairResult:
    """What the candidate's and the tests' processes did for one sample."""

    candidate_ready: bool = False
    tests_ready: bool = False
    messages: list[dict] = field(default_factory=list)
    """The tests' verdict channel, one object per line (`stage`/`status`, `done`)."""
    timed_out: bool = False
    output_capped: bool = False
    candidate_output: str = ""
    tests_output: str = ""
    launcher_error: str | None = None
    sandbox: str = "bwrap"
    startup: float | None = None
    """Seconds until both processes were ready (sandbox start-up)."""
    loaded: float | None = None
    """Seconds until the program had loaded (the tests' side heard so)."""
    seconds: float = 0.0

    @property
    def done(self) -> bool:
        """The tests' side finished and said so."""
        return any(m.get("done") is True for m in self.messages)


def run_pair(program: str, job: dict, limits: Limits, unsafe: bool = False, python: str | None = None) -> PairResult:
    """Judge one program: its process serves calls, the tests' process runs `job` against a proxy.

    The two processes talk over two pipes that only they hold; the supervisor reads the tests' verdict
    channel and stops at `done`, at the deadline, or when the candidate floods its output.
    """
    started = time.monotonic()
    deadline = started + limits.timeout
    c_status_r, c_status_w = os.pipe()
    c_program_r, c_program_w = os.pipe()
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    verdict_r, verdict_w = os.pipe()
    job_r, job_w = os.pipe()
    c_out_r, c_out_w = os.pipe()
    t_out_r, t_out_w = os.pipe()
    theirs = [c_status_w, c_program_r, req_r, resp_w, verdict_w, job_r, resp_r, req_w, c_out_w, t_out_w]
    _reopenable(c_out_w, t_out_w)
    ours = [c_status_r, c_program_w, verdict_r, job_w, c_out_r, t_out_r]
    runs: list[Launched] = []
    try:
        candidate_fds = [c_status_w, c_program_r, req_r, resp_w]
        runs.append(launch("candidate", {"status": c_status_w, "program": c_program_r, "requests": req_r,
                                         "responses": resp_w}, limits, candidate_fds, unsafe=unsafe, python=python,
                           stdout=c_out_w, stderr=c_out_w))
        tests_fds = [verdict_w, job_r, resp_r, req_w]
        runs.append(launch("tests", {"verdict": verdict_w, "job": job_r, "responses": resp_r, "requests": req_w},
                           limits, tests_fds, unsafe=unsafe, python=python, stdout=t_out_w, stderr=t_out_w))
    except BaseException:
        for run in runs:
            stop(run)
        for fd in theirs + ours:
            os.close(fd)
        raise
    for fd in theirs:  # only the two sandboxes hold these now: either's death is the other's end of input
        os.close(fd)
    result = PairResult(sandbox="bwrap" if runs[0].sandboxed else "none")
    pump = Pump()
    program_sent = False
    try:
        pump.read(c_status_r, 4096)
        pump.read(verdict_r, VERDICT_BYTES)
        pump.read(c_out_r, limits.output_bytes)
        pump.read(t_out_r, limits.output_bytes)
        pump.write(job_w, json.dumps(job).encode("utf-8"))
        for run in runs:
            _watch_status(pump, run)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                result.timed_out = True
                break
            pump.step(left)
            now = time.monotonic() - started
            messages = _lines(pump.data[verdict_r])
            if not program_sent and messages:
                # The program starts only once the tests' side is up: nothing it does (a CPU hog, a
                # flood) can then keep the tests' sandbox from starting and pass as a sandbox failure.
                pump.write(c_program_w, program.encode("utf-8", "surrogatepass"))
                program_sent = True
            if result.startup is None and b"ready" in pump.data[c_status_r] and messages:
                result.startup = now
            if result.loaded is None and any(m.get("stage") == "loaded" for m in messages):
                result.loaded = now
            if any(m.get("done") is True for m in messages) or verdict_r in pump.ended:
                break  # the verdict is in, or the tests' side is gone
            if c_status_r in pump.ended and b"ready" not in pump.data[c_status_r]:
                break  # the candidate's sandbox did not start
            if c_out_r in pump.overflowed:
                result.output_capped = True
                break
    finally:
        for run in runs:
            stop(run)
        result.candidate_ready = any(m.get("ready") is True for m in _lines(pump.data.get(c_status_r, b"")))
        result.messages = _lines(pump.data.get(verdict_r, b""))
        result.tests_ready = any(m.get("ready") is True for m in result.messages)
        result.candidate_output, result.tests_output = pump.text(c_out_r), pump.text(t_out_r)
        pump.close()
        if not program_sent:
            os.close(c_program_w)
    if verdict_r in pump.overflowed:
        result.messages.append({"malformed": "the verdict channel overflowed"})
    if not (result.candidate_ready and result.tests_ready):
        which = result.candidate_output if not result.candidate_ready else result.tests_output
        result.launcher_error = which.strip()[-500:] or ("a sandbox did not start within the time limit"
                                                          if result.timed_out else "a sandbox did not start")
    result.seconds = time.monotonic() - started
    return result
