"""The helpers of the teaching note: progress publishing and background saves.

Each comes in two forms with one interface: inline (the `serial` layout does everything in the
main thread) and threaded (a helper thread that shares the task's memory). `Helpers` bundles one
of each for a process, plus the cancellation flag that every task loop of that process watches.

Helper errors are never only printed: they are kept and raised into the run, by `submit()` as
soon as they are seen, and by `Helpers.__exit__` at the latest.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from ..errors import PipelineError, SaveError, user_limit
from ..instrument import trace
from ..instrument.faults import fault_at
from ..media import ffmpeg
from ..report.reporters import Reporter
from ..report.results import TaskResult

__all__ = ["Helpers", "InlineProgress", "InlineSaver", "ThreadProgress", "ThreadSaver"]

#: How often progress is published, in seconds (about ten times a second).
PROGRESS_INTERVAL = 0.1
#: Saves waiting for the saver thread; when full, the task waits (explicit backpressure).
SAVE_QUEUE_SIZE = 8

SaveJob = Callable[[], None]


class InlineProgress:
    """Publishes frame counts from the task's own thread, at most every `interval` seconds."""

    def __init__(self, reporter: Reporter, interval: float = PROGRESS_INTERVAL) -> None:
        self.reporter = reporter
        self.interval = interval
        self._next = 0.0

    def started(self, task: str, total_frames: int) -> None:
        self.reporter.task_started(task, total_frames)

    def update(self, task: str, frames: int) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.interval
            self.reporter.frames_done(task, frames)

    def finished(self, task: str, result: TaskResult) -> None:
        self.reporter.frames_done(task, result.frames)
        self.reporter.task_finished(task, result)

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class ThreadProgress(InlineProgress):
    """A thread that publishes every task's frame count every `interval` seconds.

    Task loops only store a number (`update`), so progress costs the hot loop nothing.
    """

    def __init__(self, reporter: Reporter, interval: float = PROGRESS_INTERVAL) -> None:
        super().__init__(reporter, interval)
        self._counts: dict[str, int] = {}
        self._published: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()  # publish() runs in this thread and in finished()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self.error: BaseException | None = None

    def update(self, task: str, frames: int) -> None:
        self._counts[task] = frames

    def finished(self, task: str, result: TaskResult) -> None:
        self._counts[task] = result.frames
        self._publish()
        self.reporter.task_finished(task, result)

    def _publish(self) -> None:
        with self._lock:
            for task, frames in list(self._counts.items()):
                if self._published.get(task) != frames:
                    fault_at("progress", task, frames)
                    self._published[task] = frames
                    self.reporter.frames_done(task, frames)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                begin = trace.now()
                self._publish()
                trace.span("publish", "progress", begin, trace.now())
        except BaseException as exc:  # kept and raised by close(), never only printed
            self.error = exc

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.error is not None:
            raise PipelineError(f"progress thread failed: {self.error!r}") from self.error
        self._publish()


def _save_error(exc: Exception) -> SaveError:
    """The error of a failed save: a limit reached (a full disk) in the same words as any
    write's, which the message must carry as the cause does not cross to another process."""
    return SaveError(user_limit(exc) or f"background save failed: {exc}")


class InlineSaver:
    """Runs each save job at once in the caller's thread."""

    def submit(self, job: SaveJob) -> None:
        try:
            job()
        except Exception as exc:
            raise _save_error(exc) from exc

    def submit_latest(self, key: object, job: SaveJob) -> None:
        self.submit(job)

    def flush(self) -> None:
        pass

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class ThreadSaver:
    """A saver thread with two inboxes: a bounded queue, and a newest-wins slot per key.

    `submit` queues a job (a thumbnail), waiting while `maxsize` are queued: explicit
    backpressure, so memory stays bounded. `submit_latest` leaves a job under a key (a
    checkpoint's path), replacing any job there not yet run, and never waits: a periodic
    checkpoint only needs the newest state (tqdm's `MonoWorker` idea), so it neither waits
    behind thumbnails nor blocks the frame loop. The thread runs a waiting newest-wins job
    before the next queued one.

    The first failing job stops the saving: its error is raised by the next `submit` and by
    `close()`, and later jobs are dropped unrun, so a producer can never block on a dead thread.
    """

    def __init__(self, maxsize: int = SAVE_QUEUE_SIZE) -> None:
        self._maxsize = maxsize
        self._queue: collections.deque[SaveJob] = collections.deque()
        self._latest: dict[object, SaveJob] = {}
        self._busy = False
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="saver", daemon=True)
        self.error: Exception | None = None

    def _next(self) -> SaveJob | None:
        """The next job to run (None: closed and nothing left), waiting for one."""
        with self._cond:
            while not (self._queue or self._latest or self._closing):
                self._cond.wait()
            if self._latest:
                job = self._latest.pop(next(iter(self._latest)))
            elif self._queue:
                job = self._queue.popleft()
            else:
                return None
            self._busy = True
            self._cond.notify_all()  # a producer may be waiting for room
            return job

    def _run(self) -> None:
        while (job := self._next()) is not None:
            if self.error is None:
                begin = trace.now()
                try:
                    job()
                except Exception as exc:
                    self.error = exc
                trace.span("save", "save", begin, trace.now())
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _raise(self) -> None:
        if self.error is not None:
            raise _save_error(self.error) from self.error

    def submit(self, job: SaveJob) -> None:
        self._raise()
        with self._cond:
            while len(self._queue) >= self._maxsize and self._thread.is_alive():
                self._cond.wait()
            self._queue.append(job)
            depth = len(self._queue)
            self._cond.notify_all()
        trace.counter("save queue", depth)

    def submit_latest(self, key: object, job: SaveJob) -> None:
        self._raise()
        with self._cond:
            self._latest[key] = job
            self._cond.notify_all()

    def flush(self) -> None:
        """Wait until every submitted job has run; raise if one failed."""
        with self._cond:
            while (self._queue or self._latest or self._busy) and self._thread.is_alive():
                self._cond.wait()
        self._raise()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Run what is left, stop the thread; raise if a job failed."""
        if self._thread.is_alive():
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._thread.join()
        self._raise()


class Helpers:
    """One progress publisher, one saver and one cancellation flag for a process's tasks.

    Use as a context manager: threads start on entry and are joined on exit, where a helper's
    error is raised unless the run is already failing with another.
    """

    def __init__(self, progress: InlineProgress, saver: InlineSaver | ThreadSaver) -> None:
        self.progress = progress
        self.saver = saver
        self.cancelled = threading.Event()

    @classmethod
    def inline(cls, reporter: Reporter) -> Helpers:
        """Helpers that run in the caller's thread (the `serial` layout)."""
        return cls(InlineProgress(reporter), InlineSaver())

    @classmethod
    def threaded(cls, reporter: Reporter, save_queue: int = SAVE_QUEUE_SIZE) -> Helpers:
        """A progress thread and a saver thread with `save_queue` saves waiting at most (every
        other layout)."""
        return cls(ThreadProgress(reporter), ThreadSaver(save_queue))

    def cancel(self) -> None:
        """Ask every task loop of this process to stop, and unblock them by killing ffmpeg."""
        self.cancelled.set()
        ffmpeg.kill_all()

    def __enter__(self) -> Helpers:
        self.progress.start()
        self.saver.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        errors: list[BaseException] = []
        for close in (self.saver.close, self.progress.close):
            try:
                close()
            except PipelineError as err:
                errors.append(err)
        if errors and exc_info[1] is None:
            raise errors[0]
