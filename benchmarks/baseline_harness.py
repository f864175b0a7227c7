"""BASELINE ONLY, for benchmarks/verify.py: the code verifier as it was before issue #13 (distill at commit
6ffeb13, distill/verify/sandbox.py then distill/verify/code.py, verbatim but for the imports).

It runs the candidate's program and the tests in ONE interpreter, which lets a wrong program forge its
verdict (issue #13), and falls back to `unshare` or no sandbox at all. Nothing in distill imports it;
it is kept frozen here so that the benchmark can time the new harness against it in the same run.
Its entry point is `verify_code(problem, sample)`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from distill.records import Problem, Sample, Verdict, prompt_text
from distill.verify.extract import answer_part

log = logging.getLogger(__name__)

NOBODY = 65534
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"

# Used inside the sandbox when we are root and setpriv (util-linux) is missing: drop to the
# unprivileged user, cap the process count for that user, then exec a clean interpreter.
_BOOT = """
import os, resource, sys
uid, nproc = int(sys.argv[1]), int(sys.argv[2])
if uid >= 0 and os.getuid() == 0:
    os.setgroups([]); os.setgid(uid); os.setuid(uid)
if os.getuid() == 0 and uid >= 0:
    raise SystemExit("sandbox: could not drop root")
resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
os.execv(sys.executable, [sys.executable, "-I", "-B", "main.py"])
"""


@dataclass
class Limits:
    """What one sandboxed run may use."""

    timeout: float = 10.0
    """Wall-clock seconds before the whole process group is killed."""
    memory_mb: int = 2048
    """Address-space limit (RLIMIT_AS) in MiB."""
    file_size_mb: int = 16
    """Largest file the program may write (RLIMIT_FSIZE), MiB."""
    open_files: int = 64
    """Open file descriptors (RLIMIT_NOFILE)."""
    processes: int = 16
    """Processes the program may add (RLIMIT_NPROC on top of what the sandbox user already runs)."""
    output_bytes: int = 1 << 20
    """Bytes of stdout (and, separately, stderr) kept; more kills the program."""


@dataclass
class RunResult:
    """What happened to one sandboxed run."""

    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    output_capped: bool = False
    seconds: float = 0.0
    network_isolated: bool = False
    launcher: str = ""
    error: str | None = None
    """Set when the sandbox itself failed (the program's behaviour is then unknown)."""
    details: dict[str, object] = field(default_factory=dict)


@dataclass
class _Launcher:
    name: str
    network_isolated: bool
    drop_inside: bool  # the boot script drops root inside; else Popen drops it (no namespaces)
    python: str = sys.executable


_LAUNCHER: _Launcher | None = None
_NO_LAUNCHER: str | None = None  # why no way of starting a sandbox works (probed once, not per run)
_LAUNCH_ERRORS = ("bwrap:", "setpriv:", "unshare:", "sandbox:")
_WARNED = False


def _target_uid() -> int:
    """The uid the program runs as: nobody when we are root, else ourselves (-1 = no switch)."""
    return NOBODY if os.geteuid() == 0 else -1


def _count_processes(uid: int) -> int:
    """How many processes `uid` runs now, from /proc (RLIMIT_NPROC counts them all)."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


def _interpreters() -> list[str]:
    """Interpreters programs may run under: ours first, then the system's (an unprivileged user may not
    reach a venv under /root, say). Programs under test only need the standard library."""
    found = [sys.executable]
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(candidate) and os.path.realpath(candidate) not in map(os.path.realpath, found):
            found.append(candidate)
    return found


def _roots_under_tmp(python: str) -> list[str]:
    """The interpreter's environment folders that a private /tmp would hide (its venv and real install)."""
    roots = []
    for path in (python, os.path.realpath(python)):
        env_root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
        if (env_root == "/tmp" or env_root.startswith("/tmp/")) and env_root not in roots:
            roots.append(env_root)
    return roots


def _prefix(launcher: _Launcher, scratch: str, env: dict[str, str]) -> list[str]:
    if launcher.name == "bwrap":
        cmd = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
               "--new-session", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
               "--bind", scratch, scratch, "--chdir", scratch, "--clearenv"]
        # The private /tmp hides an interpreter that lives under /tmp (a checkout or venv there, as in
        # some CI runners): bind its environment back, read-only.
        for root in _roots_under_tmp(launcher.python):
            cmd += ["--ro-bind", root, root]
        if os.geteuid() == 0:
            # bwrap drops all capabilities of a root child; the boot script needs these two to switch user.
            cmd += ["--cap-add", "CAP_SETUID,CAP_SETGID"]
        for key, value in env.items():
            cmd += ["--setenv", key, value]
        return cmd + ["--"]
    if launcher.name == "unshare":
        return ["unshare", "--net"] + ([] if os.geteuid() == 0 else ["--map-current-user"]) + ["--"]
    return []


def _candidates() -> list[_Launcher]:
    found = []
    for python in _interpreters():
        if shutil.which("bwrap"):
            found.append(_Launcher("bwrap", True, True, python))
        if shutil.which("unshare"):
            found.append(_Launcher("unshare", True, True, python))
    found += [_Launcher("plain", False, False, python) for python in _interpreters()]
    return found


def launcher() -> _Launcher:
    """The first way of starting a sandbox that works here (probed once per process)."""
    global _LAUNCHER, _WARNED, _NO_LAUNCHER
    if _NO_LAUNCHER is not None:
        raise RuntimeError(_NO_LAUNCHER)
    if _LAUNCHER is None:
        for candidate in _candidates():
            result = _run("import os\nprint(6 * 7, os.getuid())", "", Limits(timeout=20), candidate)
            expected_uid = _target_uid() if _target_uid() >= 0 else os.getuid()
            if result.returncode == 0 and result.stdout.split() == ["42", str(expected_uid)]:
                _LAUNCHER = candidate
                break
            log.info("sandbox: %s with %s does not work here: %s", candidate.name, candidate.python,
                     result.error or result.stderr.strip()[-300:])
        else:
            _NO_LAUNCHER = "sandbox: cannot start a sandboxed Python at all (see the log for each way tried)"
            raise RuntimeError(_NO_LAUNCHER)
        if not _LAUNCHER.network_isolated and not _WARNED:
            _WARNED = True
            log.warning("SANDBOX HAS NO NETWORK ISOLATION: neither bubblewrap nor `unshare --net` works here; "
                        "programs under test can reach the network. Install bubblewrap (apt-get install bubblewrap). "
                        "Every verdict records network_isolated=false.")
    return _LAUNCHER


def run_python(source: str, stdin: str = "", limits: Limits | None = None) -> RunResult:
    """Run `source` as a Python program in the sandbox with `stdin` as its input."""
    try:
        how = launcher()
    except RuntimeError as err:
        return RunResult(returncode=None, error=str(err))
    return _run(source, stdin, limits or Limits(), how)


def _set_limits(limits: Limits, nproc: int) -> None:
    # RLIMIT_NPROC does not bind root (the sandbox launcher); it binds once the program runs as nobody.
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    cpu = int(limits.timeout) + 1
    memory = limits.memory_mb << 20
    size = limits.file_size_mb << 20
    for name, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, memory), (resource.RLIMIT_FSIZE, size),
                        (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(name, (value, value))


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _run(source: str, stdin: str, limits: Limits, how: _Launcher) -> RunResult:
    scratch = tempfile.mkdtemp(prefix="distill-sandbox-")
    uid = _target_uid()
    try:
        if uid >= 0:
            os.chown(scratch, uid, uid)
        with open(os.path.join(scratch, "main.py"), "w", encoding="utf-8") as handle:
            handle.write(source)
        with open(os.path.join(scratch, "stdin.txt"), "w", encoding="utf-8") as handle:
            handle.write(stdin)
        env = {"PATH": SAFE_PATH, "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
               "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1"}
        counted = uid if uid >= 0 else os.getuid()
        nproc = _count_processes(counted) + limits.processes
        program = [how.python, "-I", "-B", "main.py"]
        if uid >= 0 and how.drop_inside:
            # The namespaces need root to set up; the program itself runs as the unprivileged user.
            setpriv = shutil.which("setpriv")
            if setpriv:
                program = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"] + program
            else:
                program = [how.python, "-I", "-S", "-c", _BOOT, str(uid), str(nproc)]
        cmd = _prefix(how, scratch, env) + program
        extra: dict[str, object] = {}
        if uid >= 0 and not how.drop_inside:
            extra = {"user": uid, "group": uid, "extra_groups": []}
        return _supervise(cmd, scratch, env, limits, nproc, how, extra)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _supervise(cmd: list[str], scratch: str, env: dict[str, str], limits: Limits, nproc: int, how: _Launcher,
               extra: dict[str, object]) -> RunResult:
    start = time.monotonic()
    result = RunResult(returncode=None, network_isolated=how.network_isolated, launcher=how.name)
    try:
        with open(os.path.join(scratch, "stdin.txt"), "rb") as stdin:
            proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=scratch,
                                    env=env, start_new_session=True, close_fds=True,
                                    preexec_fn=lambda: _set_limits(limits, nproc), **extra)  # type: ignore[arg-type]
    except OSError as err:
        result.error = f"could not start the sandbox: {err}"
        return result
    buffers = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    deadline = start + limits.timeout
    selector = selectors.DefaultSelector()
    for pipe in buffers:
        selector.register(pipe, selectors.EVENT_READ)
    try:
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                result.timed_out = True
                break
            for key, _ in selector.select(timeout=left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer = buffers[key.fileobj]
                buffer += chunk[: max(0, limits.output_bytes - len(buffer))]
                if len(chunk) and len(buffer) >= limits.output_bytes:
                    result.output_capped = True
            if result.output_capped:
                break
        if not result.timed_out and not result.output_capped:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                result.timed_out = True
    finally:
        # Kill the whole group whatever happened: children may outlive the main program.
        _kill_group(proc.pid)
        proc.kill()
        proc.wait()
        selector.close()
        for pipe in buffers:
            pipe.close()  # type: ignore[union-attr]
    result.seconds = time.monotonic() - start
    result.returncode = proc.returncode
    result.stdout = bytes(buffers[proc.stdout]).decode("utf-8", "replace")
    result.stderr = bytes(buffers[proc.stderr]).decode("utf-8", "replace")
    if proc.returncode and not result.timed_out and result.stderr.startswith(_LAUNCH_ERRORS):
        result.error = result.stderr.strip()[:500]
    return result


# ---- distill/verify/code.py at 6ffeb13 ----



LIMITS = Limits()
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_NOT_PYTHON = {"text", "bash", "sh", "shell", "console", "output", "json", "plaintext", "txt", "c", "cpp", "java"}

_HARNESS = '''
import json as _json, os as _os, sys as _sys
_nonce = _sys.stdin.readline().strip()
_sys.stdin = open(_os.devnull)
_PROGRAM, _SETUP, _TESTS, _ENTRY, _MODE = {program!r}, {setup!r}, {tests!r}, {entry!r}, {mode!r}
def _say(**fields):
    _sys.stdout.write("\\n" + _nonce + " " + _json.dumps(fields) + "\\n")
    _sys.stdout.flush()
def _kind(err):
    if isinstance(err, MemoryError):
        return "memory"
    return "wrong_answer" if isinstance(err, AssertionError) else "runtime_error"
def _describe(err):
    return (type(err).__name__ + ": " + str(err))[:300]
_ns = {{"__name__": "__solution__"}}
try:
    exec(compile(_PROGRAM, "solution.py", "exec"), _ns)
    exec(compile(_SETUP, "setup.py", "exec"), _ns)
except BaseException as _err:
    _say(stage="program", status="memory" if isinstance(_err, MemoryError) else "runtime_error", error=_describe(_err))
    _os._exit(0)
if _MODE == "check":
    try:
        exec(compile(_TESTS[0], "test.py", "exec"), _ns)
        _ns["check"](_ns[_ENTRY])
        _say(stage="test", index=0, status="passed")
    except BaseException as _err:
        _say(stage="test", index=0, status=_kind(_err), error=_describe(_err))
else:
    for _i, _test in enumerate(_TESTS):
        try:
            exec(compile(_test, "assert_%d.py" % _i, "exec"), _ns)
            _say(stage="test", index=_i, status="passed")
        except BaseException as _err:
            _say(stage="test", index=_i, status=_kind(_err), error=_describe(_err))
_say(stage="done")
_os._exit(0)
'''


def extract_program(content: str) -> str | None:
    """The last fenced Python (or untagged) block; a fence-free answer that compiles counts as code.

    >>> extract_program("first\\n```python\\nx = 1\\n```\\nthen\\n```py\\nx = 2\\n```")
    'x = 2\\n'
    >>> extract_program("I cannot solve this.") is None
    True
    """
    blocks = [body for lang, body in _FENCE.findall(content) if lang.lower() not in _NOT_PYTHON]
    if blocks:
        return blocks[-1] if blocks[-1].strip() else None
    if "```" in content or not content.strip():
        return None
    try:
        compile(content, "answer", "exec")
    except (SyntaxError, ValueError):
        return None
    return content


def _defines(program: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", program, re.MULTILINE) is not None


def _failure_reason(result: RunResult) -> str:
    if result.timed_out:
        return "timeout"
    if "MemoryError" in result.stderr or "Cannot allocate memory" in result.stderr:
        return "memory"
    return "runtime_error"


def _verdict(correct: bool | None, reason: str | None, program: str, result: RunResult | None,
             details: dict) -> Verdict:
    if result is not None:
        details.setdefault("network_isolated", result.network_isolated)
        details.setdefault("sandbox", result.launcher)
        if result.output_capped:
            details["output_capped"] = True
    return Verdict(correct, reason, extracted=program[:2000], verifier="code", details=details)


def _run_harness(problem: Problem, program: str, limits: Limits) -> Verdict:
    tests = problem.tests or {}
    mode = tests["type"]
    entry = tests.get("entry_point") or ""
    if mode == "check":
        if entry and not _defines(program, entry) and _defines(prompt_text(problem), entry):
            program = prompt_text(problem) + program  # a completion-style answer: the body only
        test_sources, setup = [tests.get("code", "")], ""
    else:
        test_sources, setup = list(tests.get("asserts") or []), tests.get("setup") or ""
    nonce = secrets.token_hex(16)
    source = _HARNESS.format(program=program, setup=setup, tests=test_sources, entry=entry, mode=mode)
    result = run_python(source, stdin=nonce + "\n", limits=limits)
    if result.error:
        return _verdict(None, "sandbox_error", program, result, {"error": result.error[:500]})
    reports = []
    for line in result.stdout.splitlines():
        if line.startswith(nonce + " "):
            reports.append(json.loads(line[len(nonce) + 1 :]))
    tests_done = [r for r in reports if r.get("stage") == "test"]
    passed = sum(r["status"] == "passed" for r in tests_done)
    details: dict = {"passed": passed, "total": len(test_sources),
                     "passed_fraction": passed / len(test_sources) if test_sources else 0.0}
    failures = [r for r in reports if r.get("status") not in (None, "passed")]
    if failures:
        details["error"] = failures[0].get("error")
    finished = any(r.get("stage") == "done" for r in reports)
    if finished and passed == len(test_sources) and test_sources:
        return _verdict(True, None, program, result, details)
    if failures:
        statuses = [r["status"] for r in failures]
        reason = "memory" if "memory" in statuses else statuses[0]
        return _verdict(False, reason, program, result, details)
    # No verdict from the harness: killed, timed out, or the program ended the interpreter itself.
    details.setdefault("error", result.stderr.strip()[-300:] or f"exit status {result.returncode}")
    return _verdict(False, _failure_reason(result), program, result, details)


def normalise_output(text: str) -> list[str]:
    """Output lines with runs of whitespace collapsed and blank lines dropped.

    >>> normalise_output("1  2 \\n\\n3\\n")
    ['1 2', '3']
    """
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def _run_stdio(problem: Problem, program: str, limits: Limits) -> Verdict:
    cases = (problem.tests or {}).get("cases") or []
    if not cases:
        return Verdict(None, "bad_reference", verifier="code", details={"error": "stdio tests without cases"})
    passed, reasons, last = 0, [], None
    for case in cases:
        result = last = run_python(program, stdin=case["input"], limits=limits)
        if result.error:
            return _verdict(None, "sandbox_error", program, result, {"error": result.error[:500]})
        if result.timed_out or result.returncode != 0:
            reasons.append(_failure_reason(result))
            if result.timed_out:
                break  # later cases would most likely time out too; they count as failed
        elif normalise_output(result.stdout) == normalise_output(case["output"]):
            passed += 1
        else:
            reasons.append("wrong_answer")
    details = {"passed": passed, "total": len(cases), "passed_fraction": passed / len(cases)}
    if passed == len(cases):
        return _verdict(True, None, program, last, details)
    reason = next((r for r in ("timeout", "memory", "runtime_error") if r in reasons), "wrong_answer")
    return _verdict(False, reason, program, last, details)


def verify_code(problem: Problem, sample: Sample, answer_format: str = "after_think",
                limits: Limits | None = None) -> Verdict:
    """Judge a code sample by running its program against the problem's tests in the sandbox."""
    limits = limits or LIMITS
    if not problem.tests or problem.tests.get("type") not in ("check", "asserts", "stdio"):
        return Verdict(None, "bad_reference", verifier="code", details={"error": "no typed tests"})
    part = answer_part(sample.content, answer_format)
    program = extract_program(part) if part is not None and sample.think_closed is not False else None
    if program is None:
        return Verdict(False, "no_code", verifier="code")
    if problem.tests["type"] == "stdio":
        return _run_stdio(problem, program, limits)
    return _run_harness(problem, program, limits)
