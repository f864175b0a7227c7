"""A time limit that works on the main thread (an interval timer) and off it (a forked helper).

math-verify's own limit uses `signal.alarm`, which raises in non-main threads; we switch it off and
bound each call ourselves. On the main thread (the CLI, pool workers) a CPU-time timer
(ITIMER_PROF) interrupts the call: CPU time, not wall time, so that a loaded machine does not turn
slow-but-fine answers into timeouts, and it leaves SIGALRM (pytest-timeout's) alone; an outer
profiling timer is restored afterwards. Off the main thread the call runs in a single forked helper
process that is killed and replaced when it overruns (wall time there, with a margin).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class TimeLimit(BaseException):
    """Raised when a call overruns; a BaseException so that libraries' `except Exception` cannot swallow it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise TimeLimit()


WALL_FACTOR = 3.0
"""Off the main thread the limit is wall time: this many times the CPU budget, for loaded machines."""

_helper: concurrent.futures.ProcessPoolExecutor | None = None
_helper_lock = threading.Lock()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def call_with_time_limit(seconds: float, fn: Callable[..., T], *args: Any) -> T:
    """Call `fn(*args)` and raise `TimeLimit` if it takes longer than `seconds`.

    Off the main thread `fn` and its arguments must be picklable (module-level functions).

    >>> call_with_time_limit(1.0, sum, [1, 2, 3])
    6
    """
    if _in_main_thread():
        return _with_timer(seconds, fn, *args)
    return _in_helper(seconds, fn, *args)


def _with_timer(seconds: float, fn: Callable[..., T], *args: Any) -> T:
    previous_handler = signal.signal(signal.SIGPROF, _on_alarm)
    previous_left, _ = signal.setitimer(signal.ITIMER_PROF, seconds)
    started = time.monotonic()
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous_handler)
        if previous_left:
            # Give an outer timer back what it had left (at least a moment, so it still fires).
            signal.setitimer(signal.ITIMER_PROF, max(previous_left - (time.monotonic() - started), 1e-3))


@atexit.register
def _stop_helper() -> None:
    if _helper is not None:
        _helper.shutdown(wait=False, cancel_futures=True)


def _in_helper(seconds: float, fn: Callable[..., T], *args: Any) -> T:
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        helper = _helper
    future = helper.submit(fn, *args)
    try:
        return future.result(timeout=seconds * WALL_FACTOR)
    except concurrent.futures.TimeoutError:
        with _helper_lock:
            if _helper is helper:
                _helper = None
        for process in list(getattr(helper, "_processes", {}).values()):
            process.kill()
        helper.shutdown(wait=False, cancel_futures=True)
        raise TimeLimit() from None
