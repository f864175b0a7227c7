"""Code answers: the last fenced Python block, run against the problem's typed tests in the sandbox.

Test types: `check` (HumanEval: test code defining `check`, called on the entry point), `asserts`
(MBPP: the program, then the setup code, which builds test fixtures from the program's classes,
then each assert on its own, the passed fraction recorded) and `stdio` (input and
expected output per case, each case a separate run with its own time limit, compared after
whitespace normalisation). For `check` and `asserts` the harness reports through stdout lines that
start with a random nonce read from stdin before the program runs, so a program that exits early
(`sys.exit(0)`) or prints a fake verdict is not judged correct.
"""

from __future__ import annotations

import json
import re
import secrets

from distill.records import Problem, Sample, Verdict, prompt_text
from distill.verify.extract import answer_part
from distill.verify.sandbox import Limits, RunResult, run_python

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
