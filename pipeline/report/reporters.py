"""Reporters: observers of a run's progress.

The core calls a reporter's hooks and never formats anything itself; the command line plugs in a
tqdm reporter (`pipeline.cli.progress`), tests plug in `RecordingReporter`. Hooks may be called
from several threads of the process that owns the reporter, and must be quick.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from .results import TaskResult

__all__ = ["NullReporter", "RecordingReporter", "Reporter"]


class Reporter(Protocol):
    """Hooks called as tasks start, make progress and finish."""

    def task_started(self, task: str, total_frames: int) -> None:
        """`task` started; `total_frames` is the expected count (from the container)."""

    def frames_done(self, task: str, frames: int) -> None:
        """`task` has handed `frames` frames to its encoder (a running total)."""

    def task_finished(self, task: str, result: TaskResult) -> None:
        """`task` finished and its output is in place."""


class NullReporter:
    """Ignores everything (the default when nobody watches)."""

    def task_started(self, task: str, total_frames: int) -> None:
        pass

    def frames_done(self, task: str, frames: int) -> None:
        pass

    def task_finished(self, task: str, result: TaskResult) -> None:
        pass


class RecordingReporter:
    """Keeps every call as `(hook, task, value)`, with the thread that made it (for tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[str, str, Any]] = []

    def _record(self, hook: str, task: str, value: Any) -> None:
        with self._lock:
            self.events.append((hook, task, value))

    def task_started(self, task: str, total_frames: int) -> None:
        self._record("task_started", task, total_frames)

    def frames_done(self, task: str, frames: int) -> None:
        self._record("frames_done", task, frames)

    def task_finished(self, task: str, result: TaskResult) -> None:
        self._record("task_finished", task, result)
