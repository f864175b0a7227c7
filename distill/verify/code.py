"""Code answers: the last fenced Python block, run against the problem's typed tests in the sandbox.

Test types: `check` (HumanEval: test code defining `check`, called on the entry point), `asserts`
(MBPP: setup code, then each assert on its own, the passed fraction recorded) and `stdio` (input and
expected output per case, each case a separate run with its own time limit, compared after
whitespace normalisation).

The candidate and the tests never share an interpreter (`harness.run_pair`): the program runs in one
sandboxed process and serves calls; the tests run in another, which holds no candidate code, against a
proxy whose calls cross a pipe as plain values only (`wire.py`); the verdict comes from the tests'
side alone, on a channel the program cannot reach. For stdio the supervisor feeds each case's input
and compares the output itself; expected outputs never enter a sandbox.

Every verdict's details say `sandbox: "bwrap"`, or `sandbox: "none"` with `unsafe_no_sandbox: true`.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import functools
import re
import sys
import time

from distill.records import Problem, Sample, Verdict, prompt_text
from distill.verify.extract import answer_part, code_blocks
from distill.verify.harness import PairResult, RoleResult, run_pair, run_role
from distill.verify.sandbox import Limits
from distill.verify.selftest import ensure_sandbox

LIMITS = Limits()
MAX_BARE_PROGRAM = 200_000
"""Longest fence-free answer that is tried as a program (compiling it is the only way to tell)."""
STATUSES = ("passed", "wrong_answer", "runtime_error", "memory", "unserializable_result", "unsupported_test")
"""What the tests' side may report for one test."""
_NOT_PYTHON = {"text", "bash", "sh", "shell", "console", "output", "json", "plaintext", "txt", "c", "cpp", "java"}
_BUILTINS = frozenset(dir(builtins))


def extract_program(content: str) -> str | None:
    """The last fenced Python (or untagged) block; a fence-free answer that compiles counts as code.

    >>> extract_program("first\\n```python\\nx = 1\\n```\\nthen\\n```py\\nx = 2\\n```")
    'x = 2\\n'
    >>> extract_program("I cannot solve this.") is None
    True
    """
    blocks = [body for lang, body in code_blocks(content) if lang.lower() not in _NOT_PYTHON]
    if blocks:
        return blocks[-1] if blocks[-1].strip() else None
    if "```" in content or not content.strip() or len(content) > MAX_BARE_PROGRAM:
        return None
    try:
        compile(content, "answer", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return content


def _defines(program: str, name: str) -> bool:
    return re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", program, re.MULTILINE) is not None


@dataclasses.dataclass(frozen=True)
class TestPlan:
    """What the tests' side runs for a check/asserts problem, worked out once from the tests alone."""

    mode: str
    entry: str
    prompt: str
    setup: str
    tests: tuple[str, ...]
    modules: tuple[str, ...]
    """Standard-library modules the tests use without importing them (the old harness shared the
    program's imports with the tests; mbpp-596 calls `sys.getsizeof`)."""
    missing: tuple[str, ...]
    """Names the tests use that nothing on the tests' side defines: classes of the candidate's own code
    (mbpp-367, 601, 927 build `Node`/`Pair` objects). Such a test cannot run apart from the candidate."""
    error: str | None = None

    def job(self) -> dict:
        """The tests' process's instructions (see `inside.run_tests`)."""
        return {"mode": self.mode, "entry": self.entry, "prompt": self.prompt, "setup": self.setup,
                "tests": list(self.tests), "modules": list(self.modules)}


def _names(source: str) -> tuple[set[str], set[str], bool]:
    """Names read, names bound, and whether a `from x import *` hides what is bound."""
    loads: set[str] = set()
    stores: set[str] = set()
    star = False
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else stores).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stores.add(node.name)
        elif isinstance(node, ast.arg):
            stores.add(node.arg)
        elif isinstance(node, ast.alias):
            star |= node.name == "*"
            stores.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            stores.add(node.name)
        elif type(node).__name__ in ("MatchAs", "MatchStar") and getattr(node, "name", None):
            stores.add(node.name)  # type: ignore[attr-defined]
        elif type(node).__name__ == "MatchMapping" and getattr(node, "rest", None):
            stores.add(node.rest)  # type: ignore[attr-defined]
    return loads, stores, star


@functools.lru_cache(maxsize=4096)
def plan_tests(mode: str, entry: str, prompt: str, setup: str, tests: tuple[str, ...]) -> TestPlan:
    """The tests' side of a check/asserts problem; `prompt` runs first when it is code (HumanEval's
    helpers: /32 poly, /38 encode_cyclic, /50 encode_shift).

    >>> plan_tests("asserts", "f", "", "t = Node(1)", ("assert f(t) == 1", "assert f(sys.maxsize)")).missing
    ('Node',)
    """
    try:
        ast.parse(prompt)
    except (SyntaxError, ValueError):
        prompt = ""  # a prose prompt: nothing to run
    loads: set[str] = set()
    stores: set[str] = {entry, "candidate", "__name__"}
    star = False
    try:
        for source in (prompt, setup, *tests):
            read, bound, hidden = _names(source)
            loads |= read
            stores |= bound
            star |= hidden
    except (SyntaxError, ValueError) as err:
        return TestPlan(mode, entry, prompt, setup, tests, (), (), error=f"the tests do not parse: {err}")
    free = loads - stores - _BUILTINS
    modules = tuple(sorted(n for n in free if n in sys.stdlib_module_names))
    missing = () if star else tuple(sorted(free - set(modules)))
    return TestPlan(mode, entry, prompt, setup, tests, modules, missing)


def _details(sandbox: str, **fields: object) -> dict:
    details: dict = {"sandbox": sandbox}
    if sandbox == "none":
        details["unsafe_no_sandbox"] = True
    details.update({k: v for k, v in fields.items() if v is not None})
    return details


def _pair_verdict(result: PairResult, n_tests: int, program: str, timing: dict) -> Verdict:
    """The verdict of a check/asserts run, from the tests' messages alone; anything missing, malformed,
    late or failed stands against a pass."""
    def verdict(correct: bool | None, reason: str | None, **fields: object) -> Verdict:
        details = _details(result.sandbox, output_capped=result.output_capped or None, **fields)
        details["seconds"] = {**timing, "startup": result.startup, "loaded": result.loaded,
                              "total": round(result.seconds, 4)}
        return Verdict(correct, reason, extracted=program[:2000], verifier="code", details=details)

    if result.launcher_error is not None:
        return verdict(None, "sandbox_error", error=result.launcher_error[:500])
    statuses: dict[int, tuple[str, str | None]] = {}
    stage_failure: tuple[str, str | None] | None = None
    malformed = None
    for message in result.messages:
        stage = message.get("stage")
        if stage == "test":
            index, status = message.get("index"), message.get("status")
            if type(index) is not int or not 0 <= index < n_tests or index in statuses or status not in STATUSES:
                malformed = f"a malformed test report: {str(message)[:200]}"
                continue
            statuses[index] = (status, message.get("error"))
        elif stage in ("program", "prompt"):
            stage_failure = (str(message.get("status")), message.get("error"))
        elif stage == "loaded" or message.get("ready") is True or message.get("done") is True:
            continue
        else:
            malformed = f"a malformed report: {str(message)[:200]}"
    passed = sum(status == "passed" for status, _ in statuses.values())
    counts = {"passed": passed, "total": n_tests, "passed_fraction": passed / n_tests if n_tests else 0.0}
    if stage_failure is not None and stage_failure[0] == "bad_reference":
        return verdict(None, "bad_reference", error=f"the problem's prompt code fails: {stage_failure[1]}", **counts)
    failures = [statuses[i] for i in sorted(statuses) if statuses[i][0] != "passed"]
    if any(status == "unsupported_test" for status, _ in failures):
        error = next(e for s, e in failures if s == "unsupported_test")
        return verdict(None, "unsupported_test", error=error, **counts)
    complete = (result.done and len(statuses) == n_tests and stage_failure is None and malformed is None
                and not result.timed_out and not result.output_capped)
    if complete and n_tests and passed == n_tests:
        return verdict(True, None, **counts)
    if stage_failure is not None:
        status = stage_failure[0] if stage_failure[0] in ("memory", "runtime_error") else "runtime_error"
        return verdict(False, status, error=stage_failure[1], **counts)
    if failures:
        reason = "memory" if any(s == "memory" for s, _ in failures) else failures[0][0]
        return verdict(False, reason, error=failures[0][1], **counts)
    if result.timed_out:
        return verdict(False, "timeout", error="the time limit passed before the tests finished", **counts)
    if result.output_capped:
        return verdict(False, "runtime_error", error="the program's output passed the limit", **counts)
    error = malformed or "the tests' process ended without a verdict"
    return verdict(False, "runtime_error", error=error + (f" ({result.tests_output.strip()[-200:]})"
                                                          if result.tests_output.strip() else ""), **counts)


def _run_pair(problem: Problem, program: str, limits: Limits, unsafe: bool, timing: dict) -> Verdict:
    tests = problem.tests or {}
    mode = tests["type"]
    entry = tests.get("entry_point") or ""
    prompt = ""
    if mode == "check":
        prompt = prompt_text(problem)
        if entry and not _defines(program, entry) and _defines(prompt, entry):
            program = prompt + program  # a completion-style answer: the body only
        sources: tuple[str, ...] = (tests.get("code") or "",)
        setup = ""
    else:
        sources, setup = tuple(tests.get("asserts") or ()), tests.get("setup") or ""
    plan = plan_tests(mode, entry, prompt if mode == "check" else "", setup, sources)
    if plan.error is not None:
        return Verdict(None, "bad_reference", extracted=program[:2000], verifier="code", details={"error": plan.error})
    if plan.missing:
        return Verdict(None, "unsupported_test", extracted=program[:2000], verifier="code",
                       details={"error": "the tests use names defined only by the candidate's code: "
                                         + ", ".join(plan.missing), "names": list(plan.missing)})
    if not entry:
        return Verdict(None, "bad_reference", verifier="code", details={"error": "check/asserts tests without entry_point"})
    result = run_pair(program, plan.job(), limits, unsafe=unsafe)
    return _pair_verdict(result, len(sources), program, timing)


def normalise_output(text: str) -> list[str]:
    """Output lines with runs of whitespace collapsed and blank lines dropped.

    >>> normalise_output("1  2 \\n\\n3\\n")
    ['1 2', '3']
    """
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def _failure_reason(result: RoleResult) -> str:
    if result.timed_out:
        return "timeout"
    if "MemoryError" in result.stderr or "Cannot allocate memory" in result.stderr:
        return "memory"
    return "runtime_error"


def _run_stdio(problem: Problem, program: str, limits: Limits, unsafe: bool, spent: float, timing: dict) -> Verdict:
    cases = (problem.tests or {}).get("cases") or []
    passed, reasons, errors, capped = 0, [], [], False
    startup, total = 0.0, 0.0
    for number, case in enumerate(cases):
        # The first case's limit also covers the extraction that came before it.
        case_limits = dataclasses.replace(limits, timeout=limits.timeout - spent) if number == 0 else limits
        result = run_role("stdio", {}, case_limits, stdin=str(case["input"]).encode("utf-8", "surrogatepass"),
                          program=program, unsafe=unsafe)
        startup += result.startup or 0.0
        total += result.seconds
        if result.launcher_error is not None:
            return Verdict(None, "sandbox_error", extracted=program[:2000], verifier="code",
                           details=_details(result.sandbox, error=result.launcher_error[:500]))
        capped |= result.output_capped
        if result.timed_out or result.returncode != 0 or result.output_capped:
            reasons.append(_failure_reason(result))
            errors.append(result.stderr.strip()[-300:] or f"exit status {result.returncode}")
            if result.timed_out:
                break  # later cases would most likely time out too; they count as failed
        elif normalise_output(result.stdout) == normalise_output(str(case["output"])):
            passed += 1
        else:
            reasons.append("wrong_answer")
    counts = {"passed": passed, "total": len(cases), "passed_fraction": passed / len(cases)}
    details = _details("none" if unsafe else "bwrap", output_capped=capped or None, **counts)
    details["seconds"] = {**timing, "startup": round(startup, 4), "total": round(total, 4)}
    if passed == len(cases):
        return Verdict(True, None, extracted=program[:2000], verifier="code", details=details)
    reason = next((r for r in ("timeout", "memory", "runtime_error") if r in reasons), "wrong_answer")
    if errors:
        details["error"] = errors[0]
    return Verdict(False, reason, extracted=program[:2000], verifier="code", details=details)


def verify_code(problem: Problem, sample: Sample, answer_format: str = "after_think", limits: Limits | None = None,
                unsafe_no_sandbox: bool = False) -> Verdict:
    """Judge a code sample by running its program against the problem's tests in the sandbox.

    Raises `SandboxUnavailable` when bubblewrap is missing or fails its self-test, unless
    `unsafe_no_sandbox` (then the runs are plain processes and the verdict says `sandbox: "none"`).
    The time limit (`limits.timeout`) starts before the answer is extracted.
    """
    started = time.monotonic()
    limits = limits or LIMITS
    tests = problem.tests or {}
    if tests.get("type") not in ("check", "asserts", "stdio"):
        return Verdict(None, "bad_reference", verifier="code", details={"error": "no typed tests"})
    if tests["type"] == "stdio" and not tests.get("cases"):
        return Verdict(None, "bad_reference", verifier="code", details={"error": "stdio tests without cases"})
    ensure_sandbox(unsafe_no_sandbox)
    part = answer_part(sample.content, answer_format)
    program = extract_program(part) if part is not None and sample.think_closed is not False else None
    if program is None:
        return Verdict(False, "no_code", verifier="code")
    spent = time.monotonic() - started
    timing = {"extract": round(spent, 4)}
    if spent >= limits.timeout:
        return Verdict(False, "timeout", extracted=program[:2000], verifier="code",
                       details={"error": "extracting the program took the whole time limit", "seconds": timing})
    if tests["type"] == "stdio":
        return _run_stdio(problem, program, limits, unsafe_no_sandbox, spent, timing)
    return _run_pair(problem, program, dataclasses.replace(limits, timeout=limits.timeout - spent),
                     unsafe_no_sandbox, timing)
