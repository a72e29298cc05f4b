"""Worker processes: start them, hear from them, and stop them without hangs or orphans.

A worker runs `target(reporter, *args)` in a child process and sends back its return value or
its error (with the formatted traceback). Its reporter forwards every hook call to the parent's
reporter through a pipe. The parent blocks in `multiprocessing.connection.wait` on the pipes and
on the process sentinels, so a worker that dies without a word (SIGKILL, a crash in native code)
is noticed at once and reported as `WorkerCrashed`, never waited for.

Each worker leads a process group of its own, shared with the ffmpeg children it starts: the
parent, not the terminal, decides when it stops (Ctrl-C reaches the parent only), and one
`killpg` ends a worker together with its ffmpeg children. Workers stop on SIGTERM by raising
`Interrupted` in their main thread, so their `finally` blocks clean up before they exit.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from types import FrameType, TracebackType
from typing import Any

from .errors import Interrupted, PipelineError, RemoteTraceback, WorkerCrashed
from .media import ffmpeg
from .reporters import Reporter

__all__ = ["ConnectionReporter", "Supervisor"]

#: Seconds a worker gets to clean up after SIGTERM before it is killed.
STOP_GRACE = 3.0


class ConnectionReporter:
    """A reporter in a worker that forwards each hook call to the parent's reporter."""

    def __init__(self, conn: Connection) -> None:
        import threading

        self._conn = conn
        self._lock = threading.Lock()  # the task thread and the progress thread both send

    def _send(self, hook: str, *args: Any) -> None:
        with self._lock:
            self._conn.send(("report", hook, args))

    def task_started(self, task: str, total_frames: int) -> None:
        self._send("task_started", task, total_frames)

    def frames_done(self, task: str, frames: int) -> None:
        self._send("frames_done", task, frames)

    def task_finished(self, task: str, result: Any) -> None:
        self._send("task_finished", task, result)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one clean-up is enough
    raise Interrupted(signum)


def _portable(exc: BaseException) -> BaseException:
    try:
        pickle.dumps(exc)
    except Exception:
        return PipelineError(f"{type(exc).__name__}: {exc}")
    return exc


def _worker_main(conn: Connection, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    os.setpgid(0, 0)
    ffmpeg.share_process_group()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and tells us
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        message: tuple[Any, ...] = ("result", target(ConnectionReporter(conn), *args))
    except BaseException as exc:
        message = ("error", _portable(exc), traceback.format_exc())
    try:
        conn.send(message)
    finally:
        conn.close()


@dataclass(eq=False)
class _Worker:
    name: str
    process: BaseProcess
    conn: Connection
    result: Any = None
    finished: bool = False
    error: BaseException | None = field(default=None)


class Supervisor:
    """Starts named workers and collects their results; use as a context manager.

    Leaving the block stops every worker still running (SIGTERM, then SIGKILL to its process
    group after `STOP_GRACE` seconds) and joins them all, whether the block succeeded or not.
    """

    def __init__(self, context: BaseContext, reporter: Reporter) -> None:
        self._context = context
        self._reporter = reporter
        self._workers: list[_Worker] = []

    def start(self, name: str, target: Callable[..., Any], *args: Any) -> None:
        """Run `target(reporter, *args)` in a new worker process named after `name`."""
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(  # type: ignore[attr-defined]
            target=_worker_main, args=(send, target, args), name=f"vidpipe-{name}"
        )
        self._workers.append(_Worker(name, process, receive))
        process.start()
        send.close()  # the worker holds the only write end: its exit shows as EOF here

    def results(self) -> dict[str, Any]:
        """Wait for every worker; return their results by name, or raise the first failure."""
        pending = {w for w in self._workers if not w.finished}
        while pending:
            waitables: dict[Any, _Worker] = {}
            for w in pending:
                waitables[w.conn] = w
                waitables[w.process.sentinel] = w
            for ready in wait(list(waitables)):
                worker = waitables[ready]
                if worker not in pending:
                    continue
                if ready is worker.conn and self._receive(worker):
                    continue
                self._reap(worker)
                pending.discard(worker)
        return {w.name: w.result for w in self._workers}

    def _receive(self, worker: _Worker) -> bool:
        """Handle one message; False once the worker's pipe is closed."""
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            return False
        kind = message[0]
        if kind == "report":
            getattr(self._reporter, message[1])(*message[2])
        elif kind == "result":
            worker.result, worker.finished = message[1], True
        elif kind == "error":
            error, tb = message[1], message[2]
            error.__cause__ = RemoteTraceback(tb)
            worker.error, worker.finished = error, True
            raise error
        return True

    def _reap(self, worker: _Worker) -> None:
        while worker.conn.poll():  # what it sent before exiting is still in the pipe
            if not self._receive(worker):
                break
        worker.process.join()
        if not worker.finished:
            worker.finished = True
            raise WorkerCrashed(task=worker.name, exitcode=worker.process.exitcode)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop and join every worker; kill what remains of their process groups."""
        started = [w for w in self._workers if w.process.pid is not None]
        for w in started:
            if w.process.is_alive():
                w.process.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for w in started:
            w.process.join(max(0.0, deadline - time.monotonic()))
        for w in started:
            # Whatever is left in the worker's group (the worker, or ffmpeg children orphaned
            # by a worker that was killed) goes now.
            assert w.process.pid is not None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(w.process.pid, signal.SIGKILL)
            w.process.join()
            w.conn.close()
