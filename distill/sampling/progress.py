"""A rich progress bar (problems done, samples/s, tokens/s, ETA), silent when stderr is no terminal."""

from __future__ import annotations

import sys
import time
from typing import Any


class RunProgress:
    """Counts samples and tokens; draws a bar only on a terminal (never in tests or logs)."""

    def __init__(self, total_samples: int, total_problems: int, enabled: bool | None = None) -> None:
        self.total = total_samples
        self.problems_total = total_problems
        self.samples = 0
        self.tokens = 0
        self.problems_done = 0
        self.started = time.perf_counter()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None
        if self.enabled and total_samples:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]sampling[/bold]"), BarColumn(),
                TextColumn("{task.completed}/{task.total} samples"),
                TextColumn("{task.fields[problems]}"), TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(), transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("sampling", total=total_samples, problems="", rate="")

    def advance(self, tokens: int, problem_done: bool = False) -> None:
        """Count one finished sample with its completion tokens."""
        self.samples += 1
        self.tokens += tokens
        self.problems_done += int(problem_done)
        if self._bar is not None:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            self._bar.update(self._task, completed=self.samples,
                             problems=f"{self.problems_done}/{self.problems_total} problems",
                             rate=f"{self.samples / elapsed:.1f} samples/s {self.tokens / elapsed:.0f} tok/s")

    def close(self) -> None:
        """Stop drawing."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
