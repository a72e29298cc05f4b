"""Exercise 6 (solution): a progress reporter of your own, plugged into a run from Python.

The core calls a reporter's three hooks (`pipeline.report.reporters.Reporter`) and never formats
anything; the command line's tqdm bars are one such reporter. This one writes a line each time
a task passes another `step` percent, which suits logs and CI output better than bars. Hooks
may be called from several threads, so the state is guarded by a lock.

    from pipeline import RunOptions, run
    run("sample_media/car-detection.mp4", RunOptions(out_dir="out"), reporter=PercentLog())
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from pipeline import TaskResult


class PercentLog:
    """Writes `task: N%` lines to `stream` every `step` percent, and a last line per task."""

    def __init__(self, stream: TextIO = sys.stdout, step: int = 10) -> None:
        self.stream = stream
        self.step = step
        self._lock = threading.Lock()
        self._totals: dict[str, int] = {}
        self._next: dict[str, int] = {}

    def task_started(self, task: str, total_frames: int) -> None:
        with self._lock:
            self._totals[task] = max(total_frames, 1)
            self._next[task] = self.step

    def frames_done(self, task: str, frames: int) -> None:
        with self._lock:
            percent = min(100, 100 * frames // self._totals.get(task, max(frames, 1)))
            while self._next.get(task, 101) <= percent < 100:
                self.stream.write(f"{task}: {self._next[task]}%\n")
                self._next[task] += self.step

    def task_finished(self, task: str, result: TaskResult) -> None:
        with self._lock:
            self.stream.write(f"{task}: 100% ({result.frames} frames in {result.seconds:.2f} s)\n")
            self._next[task] = 101  # done: no more lines for this task
