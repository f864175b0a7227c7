"""A test-only fault hook: named points in the code where a test can make the process kill itself.

With `DISTILL_FAULT=NAME:N` in the environment, the N-th time this process reaches `faults.point(NAME)`
it sends itself SIGKILL, exactly as `kill -9` would at that moment, so crash-and-resume tests hit
precise places (mid-append, tail repair, manifest temp write, rename, summary write) without timing.
Several points may be given, separated by commas. Without the variable a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

_PLAN: dict[str, int] = {}
_SEEN: dict[str, int] = {}


def arm(spec: str) -> None:
    """Set the plan as `DISTILL_FAULT` would (`NAME:N[,NAME:N...]`; empty: none), forgetting earlier counts;
    for a test process forked to die at one point."""
    _PLAN.clear()
    _SEEN.clear()
    for item in filter(None, spec.split(",")):
        name, _, count = item.partition(":")
        _PLAN[name.strip()] = int(count or 1)


arm(os.environ.get("DISTILL_FAULT", ""))


def armed(name: str) -> bool:
    """Whether a fault is planned at `name` (to split a write in two only when a test asks for it)."""
    return name in _PLAN


def point(name: str) -> None:
    """Reach the fault point `name`: kill this process here if the environment asks for it."""
    if name not in _PLAN:
        return
    _SEEN[name] = _SEEN.get(name, 0) + 1
    if _SEEN[name] == _PLAN[name]:
        os.kill(os.getpid(), signal.SIGKILL)
