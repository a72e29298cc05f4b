"""Worker processes: start them, hear from them, and stop them without hangs or orphans.

A worker runs `target(link, *args)` in a child process and sends back its return value or its error
(with the formatted traceback). Its `WorkerLink` is a reporter that forwards every hook call to the
parent's reporter through a pipe, and carries the worker's own messages (frames of a pool) to the
parent's `on_message` callback. The parent blocks in `multiprocessing.connection.wait` on the pipes
and on the process sentinels, so a worker that dies without a word (SIGKILL, a crash in native
code) is noticed at once and reported as `WorkerCrashed`, never waited for.

Each worker leads a process group of its own, shared with the ffmpeg children and pool workers it
starts: the parent, not the terminal, decides when it stops (Ctrl-C reaches the parent only), and
one `killpg` ends a worker together with everything it started. A supervisor inside a worker (a
frame pool) passes `own_groups=False` so that its workers stay in that group. On Linux every worker
also gets SIGTERM if its parent dies, so not even a killed parent leaves workers behind. Workers
stop on SIGTERM by raising `Interrupted` in their main thread, so their `finally` blocks clean up
before they exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from ..errors import (
    Interrupted,
    PipelineError,
    RemoteTraceback,
    WorkerCrashed,
    WorkerStopped,
    interrupt_on,
)
from ..media import ffmpeg
from ..report.reporters import Reporter
from ..report.results import TaskResult
from . import leftovers
from .leftovers import leave_stuck_threads
from .messages import (
    Failure,
    FramesDone,
    Hook,
    Result,
    StageLeftovers,
    TaskFinished,
    TaskStarted,
)

__all__ = ["Supervisor", "WorkerLink", "die_with_parent", "leave_stuck_threads"]

#: Seconds a worker gets to clean up after SIGTERM before it is killed. Workers normally
#: finish in about 0.1 s; the margin keeps a whole interrupted run under the promised 3 s.
STOP_GRACE = 2.0
_PR_SET_PDEATHSIG = 1
#: What stops a run or a worker: blocked while a worker starts (`Supervisor.start`).
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class WorkerLink:
    """A worker's line to its parent: reporter hooks, forwarded, and messages of its own.

    `send(message)` delivers a message of the worker's own (`pipeline.engine.messages`) to the
    parent's `on_message` callback. Thread-safe: a worker's task thread and progress thread
    both use it.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, message: object) -> None:
        with self._lock:
            self._conn.send(message)

    def task_started(self, task: str, total_frames: int) -> None:
        self.send(TaskStarted(task, total_frames))

    def frames_done(self, task: str, frames: int) -> None:
        self.send(FramesDone(task, frames))

    def task_finished(self, task: str, result: TaskResult) -> None:
        self.send(TaskFinished(task, result))


def _portable(exc: BaseException) -> BaseException:
    """`exc` as the parent can receive and raise it: picklable, and an `Exception` or an
    interruption (a `SystemExit` raised in a worker is a failure of the worker's, not an exit
    code for the whole run)."""
    if not isinstance(exc, Exception | KeyboardInterrupt):
        return PipelineError(f"{type(exc).__name__}: {exc}")
    try:
        pickle.dumps(exc)
    except Exception:
        return PipelineError(f"{type(exc).__name__}: {exc}")
    return exc


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no-op elsewhere).

    The parent is the supervising process, or the fork server under `forkserver` (which lives
    as long as the process that started it).
    """
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(
    conn: Connection,
    target: Callable[..., Any],
    args: tuple[Any, ...],
    own_group: bool,
) -> None:
    if own_group:
        os.setpgid(0, 0)
    ffmpeg.share_process_group()
    for sig in (signal.SIGINT, signal.SIGHUP):  # the parent handles a terminal's and tells us
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGHUP})  # see start()
    interrupt_on(signal.SIGTERM)
    die_with_parent()
    message: Result | Failure
    try:
        try:
            # A stop request that came while it started is raised here, as `Interrupted`.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            message = Result(target(WorkerLink(conn), *args))
        finally:
            # Nothing is left to clean up: a stop request from now on must not interrupt the
            # report (a worker failing on its own is stopped by its parent all the same).
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except BaseException as exc:  # a stop request that came first is reported as such
        message = Failure(_portable(exc), traceback.format_exc())
    left = leftovers.settle()  # the stages' children killed, their threads named
    try:
        if left:
            conn.send(StageLeftovers(tuple(left)))
        conn.send(message)
    except OSError:
        pass  # the parent is gone (killed): nobody to tell, and nothing to print
    finally:
        conn.close()
    # Reported: a thread a stage left running must not hold the worker's exit (its parent
    # would wait for it, and the run pass for stalled).
    leave_stuck_threads(1 if isinstance(message, Failure) else 0)


@dataclass(eq=False)
class _Worker:
    name: str
    task: str
    role: str
    process: BaseProcess
    conn: Connection
    reporter: Reporter
    result: Any = None
    finished: bool = False


#: Called with a worker's name and a message of its own.
MessageHandler = Callable[[str, object], None]


class Supervisor:
    """Starts named workers, dispatches what they send, and collects their results.

    Use as a context manager: leaving the block stops every worker still running (SIGTERM, then
    SIGKILL to its process group after `STOP_GRACE` seconds) and joins them all, whether the
    block succeeded or not. A worker's error is raised in the parent with the worker's
    traceback as `__cause__`; a worker that dies silently raises `WorkerCrashed`.
    """

    def __init__(
        self,
        context: BaseContext,
        reporter: Reporter,
        on_message: MessageHandler | None = None,
        *,
        own_groups: bool = True,
    ) -> None:
        self._own_groups = own_groups
        self._context = context
        self._reporter = reporter
        self._on_message = on_message
        self._workers: list[_Worker] = []
        #: Set once `stop` has asked the workers to stop: an interruption they report after
        #: that is ours; one before it came from outside.
        self._stopping = False

    def start(
        self,
        name: str,
        target: Callable[..., Any],
        *args: Any,
        task: str | None = None,
        role: str = "worker process",
        reporter: Reporter | None = None,
    ) -> None:
        """Run `target(link, *args)` in a new worker process.

        `name` keys its result; `task` and `role` name it in errors ("task 'render': pool
        worker 1 died"); `reporter` receives its hook calls instead of the supervisor's.
        """
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(  # type: ignore[attr-defined]
            target=_worker_main,
            args=(send, target, args, self._own_groups),
            name=f"vidpipe-{name}",
        )
        worker = _Worker(name, task or name, role, process, receive, reporter or self._reporter)
        self._workers.append(worker)
        # The new process starts with the stop signals blocked (the mask is inherited through
        # fork and exec) until `_worker_main` handles them: a Ctrl-C to the terminal's process
        # group while it is still importing would otherwise print a KeyboardInterrupt
        # traceback. Here they wait until the start has returned: a stop request must not cut
        # short the writing of what the new process reads first (it blocks while that process
        # is stopped and the pipe is full), or the process reads half of it and fails with a
        # traceback of its own.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        send.close()  # the worker holds the only write end: its exit shows as EOF here

    @property
    def running(self) -> int:
        """Workers started and not yet finished."""
        return sum(not w.finished for w in self._workers)

    def pump(self, timeout: float | None = None) -> list[str]:
        """Block until a worker sends or exits (at most `timeout` seconds); handle it. Returns
        the names that finished."""
        pending = {w for w in self._workers if not w.finished}
        if not pending:
            return []
        waitables: dict[Any, _Worker] = {}
        for w in pending:
            waitables[w.conn] = w
            waitables[w.process.sentinel] = w
        done = []
        for ready in wait(list(waitables), timeout):
            worker = waitables[ready]
            if worker.finished:
                continue
            if ready is worker.conn and self._receive(worker):
                if worker.finished:
                    worker.process.join()
                    done.append(worker.name)
                continue
            self._reap(worker)
            done.append(worker.name)
        return done

    def result(self, name: str) -> Any:
        """The result of the finished worker `name`."""
        return next(w.result for w in self._workers if w.name == name and w.finished)

    def results(self) -> dict[str, Any]:
        """Wait for every worker; return their results by name, or raise the first failure."""
        while self.running:
            self.pump()
        return {w.name: w.result for w in self._workers}

    def _receive(self, worker: _Worker) -> bool:
        """Handle one message; False once the worker's pipe is closed."""
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            return False
        if isinstance(message, Hook):
            message.deliver(worker.reporter)
        elif isinstance(message, Result):
            worker.result, worker.finished = message.value, True
        elif isinstance(message, Failure):
            error = self._failure(worker, message.error)
            error.__cause__ = RemoteTraceback(message.traceback)
            worker.finished = True
            raise error
        elif isinstance(message, StageLeftovers):
            leftovers.adopt(message.found)
        elif self._on_message is not None:
            self._on_message(worker.name, message)
        return True

    def _failure(self, worker: _Worker, error: BaseException) -> BaseException:
        """The error to raise for a worker's failure: an interruption that this supervisor
        did not ask for (a SIGTERM sent to that worker alone) fails the run naming it."""
        if isinstance(error, Interrupted) and not self._stopping:
            return WorkerStopped(task=worker.task, worker=worker.role, signum=error.signum)
        return error

    def _reap(self, worker: _Worker) -> None:
        while not worker.finished and worker.conn.poll():  # what it sent before exiting
            if not self._receive(worker):
                break
        worker.process.join()
        if not worker.finished:
            worker.finished = True
            raise WorkerCrashed(
                task=worker.task, worker=worker.role, exitcode=worker.process.exitcode
            )

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop and join every worker; kill what remains of their process groups."""
        self._stopping = True
        started = [w for w in self._workers if w.process.pid is not None]
        for w in started:
            if w.process.is_alive() and not w.finished:  # finished ones are exiting already
                w.process.terminate()
                # A stopped worker (SIGSTOP, a debugger) could not act on it: it continues,
                # so that it cleans up rather than being killed with its resources held.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    assert w.process.pid is not None
                    if self._own_groups:
                        os.killpg(w.process.pid, signal.SIGCONT)
                    else:
                        os.kill(w.process.pid, signal.SIGCONT)
        deadline = time.monotonic() + STOP_GRACE
        for w in started:
            w.process.join(max(0.0, deadline - time.monotonic()))
        for w in started:
            # Whatever is left in the worker's group (the worker, or ffmpeg children orphaned
            # by a worker that was killed) goes now.
            assert w.process.pid is not None
            if self._own_groups:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(w.process.pid, signal.SIGKILL)
            elif w.process.is_alive():
                w.process.kill()
            w.process.join()
            w.conn.close()
