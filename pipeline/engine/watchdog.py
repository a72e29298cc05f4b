"""The stall watchdog: a run in which no frame moves for `--stall-timeout` seconds fails.

A process of the run that stops (SIGSTOP, a debugger, a hung disk) would otherwise hold the run
for ever: its parent waits on a pipe that never speaks. Every layout reports progress to the
main process (a reporter's `frames_done`, about ten times a second), so the main process
watches that: when no task's frame count has moved for the timeout, the watchdog interrupts the
main thread with `Stalled`, and the run fails as on any other error (exit 1), its processes
stopped and its partial files removed. The message names a stopped process of the run when
there is one.

The watchdog needs the main thread (it interrupts it with a signal); a run started from another
thread is not watched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from ..errors import PipelineError
from ..plan.outdir import PART_SUFFIX
from ..report.reporters import Reporter
from ..report.results import TaskResult

__all__ = ["Stalled", "Watchdog"]


class Stalled(PipelineError):
    """No frame of the run moved for the stall timeout."""


class Watchdog:
    """A reporter that forwards every hook to `reporter` and notes when frames last moved.

    `armed()` watches the run for the length of a `with` block, with a thread that also calls
    `beat` (the output folder's heartbeat, `pipeline.plan.ownership.Held.beat`) every second.
    """

    def __init__(
        self, reporter: Reporter, timeout: float, beat: Callable[[], None] | None = None
    ) -> None:
        self._reporter = reporter
        self.timeout = timeout
        self._beat = beat
        self._moved = time.monotonic()
        self._frames: dict[str, int] = {}
        self._finished: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._verdict: str | None = None

    def _touch(self) -> None:
        self._moved = time.monotonic()

    def task_started(self, task: str, total_frames: int) -> None:
        self._touch()
        self._reporter.task_started(task, total_frames)

    def frames_done(self, task: str, frames: int) -> None:
        with self._lock:
            if self._frames.get(task) != frames:
                self._frames[task] = frames
                self._touch()
        self._reporter.frames_done(task, frames)

    def task_finished(self, task: str, result: TaskResult) -> None:
        with self._lock:
            self._finished.add(task)
            self._touch()
        self._reporter.task_finished(task, result)

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """Watch the run inside the block. Stalls are watched only with a timeout and from the
        main thread (they interrupt it with a signal); the heartbeat is kept in any case."""
        watching = self.timeout > 0 and threading.current_thread() is threading.main_thread()
        if not watching and self._beat is None:
            yield
            return
        previous = signal.signal(signal.SIGUSR1, self._on_signal) if watching else None
        self._touch()
        thread = threading.Thread(target=self._watch, args=(watching,), name="watchdog")
        thread.daemon = True
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()
            if watching:
                signal.signal(signal.SIGUSR1, previous)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._verdict is not None:
            verdict, self._verdict = self._verdict, None  # raised once
            raise Stalled(verdict)

    def _watch(self, watching: bool) -> None:
        main = threading.main_thread().ident
        assert main is not None
        period = min(1.0, self.timeout / 4) if watching else 1.0
        while not self._stop.wait(period):
            if self._beat is not None:
                self._beat()
            if watching and time.monotonic() - self._moved >= self.timeout:
                self._verdict = self._describe()
                signal.pthread_kill(main, signal.SIGUSR1)
                watching = False  # said once; the heartbeat goes on until the run has ended

    def _describe(self) -> str:
        with self._lock:
            waiting = [
                f"'{task}' at frame {frames}"
                for task, frames in self._frames.items()
                if task not in self._finished
            ]
        where = f" (task {', '.join(waiting)})" if waiting else ""
        stopped = [_describe_process(pid) for pid in _stopped_descendants()]
        cause = (
            f"{stopped[0]} is stopped"
            if stopped
            else "no process of the run is stopped: a stage may be stuck, or the machine overloaded"
        )
        return (
            f"the run stalled: no frame moved for {self.timeout:g} s{where}; {cause} "
            "(--stall-timeout sets how long to wait)"
        )


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of `pid`, from /proc; None when it is gone or not Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def _stopped_descendants() -> list[int]:
    """Processes started by this one, at any depth, that are stopped (state T)."""
    parents: dict[int, list[int]] = {}
    states: dict[int, str] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
            states[int(entry.name)] = stat[0]
            parents.setdefault(stat[1], []).append(int(entry.name))
    found, todo = [], list(parents.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        if states.get(pid) in ("T", "t"):
            found.append(pid)
        todo += parents.get(pid, [])
    return sorted(found)


def _describe_process(pid: int) -> str:
    """`process 123 (ffmpeg writing rendered.mp4)`, or as much of it as can be told."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return f"process {pid}"
    if "ffmpeg" in Path(args[0]).name:
        name = "ffmpeg"  # the bundled binary's own name is long (ffmpeg-linux-x86_64-v7...)
    writing = next((a for a in args if a.endswith(PART_SUFFIX)), None)
    if writing:
        output = Path(writing).name.removeprefix(".").removesuffix(PART_SUFFIX)
        return f"process {pid} ({name} writing {output})"
    return f"process {pid} ({name})"
