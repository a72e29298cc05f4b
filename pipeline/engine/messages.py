"""What worker processes send their parent, as types: reporter hooks, a result, a failure.

A worker's `WorkerLink` sends these through its pipe; the parent's `Supervisor` dispatches on
the type. Messages of a worker's own (such as a pool's `FrameReady`) go to the supervisor's
`on_message` callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..report.reporters import Reporter
from ..report.results import TaskResult
from .leftovers import Leftover

__all__ = [
    "Failure",
    "FrameReady",
    "FramesDone",
    "Hook",
    "Result",
    "StageLeftovers",
    "TaskFinished",
    "TaskStarted",
]


class Hook:
    """A reporter hook called in a worker, to be called on the parent's reporter."""

    def deliver(self, reporter: Reporter) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class TaskStarted(Hook):
    task: str
    total_frames: int

    def deliver(self, reporter: Reporter) -> None:
        reporter.task_started(self.task, self.total_frames)


@dataclass(frozen=True)
class FramesDone(Hook):
    task: str
    frames: int

    def deliver(self, reporter: Reporter) -> None:
        reporter.frames_done(self.task, self.frames)


@dataclass(frozen=True)
class TaskFinished(Hook):
    task: str
    result: TaskResult

    def deliver(self, reporter: Reporter) -> None:
        reporter.task_finished(self.task, self.result)


@dataclass(frozen=True)
class Result:
    """The worker's target returned `value`; the worker is done."""

    value: Any


@dataclass(frozen=True)
class Failure:
    """The worker's target raised `error`; `traceback` is where, formatted in the worker."""

    error: BaseException
    traceback: str


@dataclass(frozen=True)
class StageLeftovers:
    """What the worker's stages left running after `teardown()`: its children are killed by
    now, its threads end with it. Sent before its `Result` or `Failure`."""

    found: tuple[Leftover, ...]


@dataclass(frozen=True)
class FrameReady:
    """A pool worker has processed frame `index`: `payload` is its shared-memory slot number,
    or the frame itself (pickled)."""

    index: int
    payload: Any
