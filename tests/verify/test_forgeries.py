"""No wrong program forges a correct verdict: every technique of forgeries.py, against check-, asserts- and
stdio-style problems, as whoever runs the tests (root in CI) and as an unprivileged user, is judged
`correct: false` (never true, and never `sandbox_error`/null: a wrong program cannot make itself
unjudgeable either). Techniques that cannot apply to a style are listed as not applicable.

Against the harness before issue #13 (`python tests/verify/forgeries.py --baseline`), 32 of the 66
applicable technique/style pairs were judged correct on the development machine.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import forgeries  # noqa: E402
from need import need  # noqa: E402
from unprivileged import run_script  # noqa: E402

TECHNIQUES = list(forgeries.techniques())
STYLES = ("check", "asserts", "stdio")


@pytest.fixture(scope="module")
def problems() -> str:
    return forgeries.problems_json()


@pytest.fixture(scope="module")
def as_us(problems: str) -> list[dict]:
    need(shutil.which("bwrap") is not None, "bubblewrap (bwrap) is not installed (scripts/setup.sh installs it)")
    return forgeries.run(json.loads(problems))


@pytest.fixture(scope="module")
def as_normal_user(problems: str, as_us: list[dict]) -> list[dict]:
    if os.geteuid() != 0:
        return as_us  # we are the normal user already
    return run_script("forgeries.py", stdin=problems)


def _check(rows: list[dict], technique: str) -> None:
    mine = [r for r in rows if r["technique"] == technique]
    assert sorted(r["style"] for r in mine) == sorted(STYLES)
    for row in mine:
        if row["applicable"]:
            assert row["correct"] is False, row
            assert row["reason"] not in ("sandbox_error", "unsupported_test", None), row
            assert row["sandbox"] == "bwrap", row


def test_the_suite_has_twenty_techniques_and_covers_every_style() -> None:
    table = forgeries.techniques()
    assert len(table) >= 20
    for name, programs in table.items():
        assert set(programs) == set(STYLES), name
        assert any(programs.values()), name
    for style in STYLES:
        assert sum(programs[style] is not None for programs in table.values()) >= 12, style


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_forgery_is_judged_wrong(as_us: list[dict], technique: str) -> None:
    _check(as_us, technique)


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_forgery_is_judged_wrong_as_normal_user(as_normal_user: list[dict], technique: str) -> None:
    _check(as_normal_user, technique)


def test_values_cross_with_their_exact_types() -> None:
    """The other side of the coin: plain results the tests compare still compare right."""
    from distill.records import Problem, Sample
    from distill.verify.code import verify_code

    need(shutil.which("bwrap") is not None, "bubblewrap (bwrap) is not installed (scripts/setup.sh installs it)")
    asserts = [
        "assert f('tuple') == (1, (2, 3)) and type(f('tuple')) is tuple",
        "assert f('list') == [1, [2, 3]] and type(f('list')) is list",
        "assert f('dict') == {(1, 2): {3: 'x'}, None: b'y'}",
        "assert f('counter') == {'a': 2, 'b': 1} and type(f('counter')) is dict",
        "assert f('sets') == ({1, 2}, frozenset({3}))",
        "assert f('numbers') == (True, 2 ** 200, 0.5, complex(1, -2)) and f('numbers')[0] is True",
        "assert str(f('nan')) == 'nan' and f('inf') == float('inf')",
        "assert f('mutate', [1, 2]) == [1, 2, 3]",
        "x = [1]\nf('mutate', x)\nassert x == [1]",  # the candidate mutates its own copy: nothing comes back
        "try:\n    f('raise')\nexcept KeyError as err:\n    assert 'missing' in str(err)\nelse:\n    raise AssertionError",
        "try:\n    f('custom')\nexcept RuntimeError as err:\n    assert 'Oops' in str(err)\nelse:\n    raise AssertionError",
    ]
    program = (
        "from collections import Counter\nclass Oops(Exception):\n    pass\n"
        "def f(kind, arg=None):\n"
        "    if kind == 'tuple': return (1, (2, 3))\n"
        "    if kind == 'list': return [1, [2, 3]]\n"
        "    if kind == 'dict': return {(1, 2): {3: 'x'}, None: b'y'}\n"
        "    if kind == 'counter': return Counter('aab')\n"
        "    if kind == 'sets': return ({1, 2}, frozenset({3}))\n"
        "    if kind == 'numbers': return (True, 2 ** 200, 0.5, complex(1, -2))\n"
        "    if kind == 'nan': return float('nan')\n"
        "    if kind == 'inf': return float('inf')\n"
        "    if kind == 'mutate':\n        arg.append(3)\n        return arg\n"
        "    if kind == 'raise': raise KeyError('missing')\n"
        "    raise Oops('custom')\n")
    problem = Problem(id="t", prompt="types", kind="code",
                      tests={"type": "asserts", "asserts": asserts, "setup": "", "entry_point": "f"})
    verdict = verify_code(problem, Sample("t", 0, "", f"```python\n{program}```"))
    assert verdict.correct is True, verdict.details
    assert verdict.details["passed"] == len(asserts)
