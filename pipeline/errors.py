"""Typed errors of the pipeline, and the exit code the command line gives each.

Every error the pipeline raises on purpose is a `PipelineError`, except `Interrupted`, which is a
`KeyboardInterrupt` so that no `except Exception` swallows it. Errors that are the user's to fix
(a bad input file, a bad option) exit with 2; failures while processing exit with 1; an
interruption exits with 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM).

All errors pickle with their attributes intact, so a worker process can send them to its parent.
"""

from __future__ import annotations

import difflib
import errno
import os
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "FolderInUse",
    "InputError",
    "Interrupted",
    "MediaError",
    "OutputConflict",
    "PipelineError",
    "RemoteTraceback",
    "SaveError",
    "StageError",
    "WorkerCrashed",
    "WorkerStopped",
    "describe_exit",
    "did_you_mean",
    "interrupt_on",
    "interrupt_on_signal",
    "process_limit",
    "reraise_interrupt",
    "user_limit",
]


def _restore(cls: type[PipelineError], args: tuple[Any, ...], state: dict[str, Any]) -> Exception:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    exit_code = 1

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's default pickling calls cls(*args), which breaks on keyword-only constructors.
        return (_restore, (type(self), self.args, self.__dict__))


class InputError(PipelineError):
    """The input file cannot be used: missing, not a video, no video stream, unreadable."""

    exit_code = 2


class ConfigError(PipelineError):
    """An option or layout is invalid, or an optional engine is not installed."""

    exit_code = 2


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """` (did you mean 'NAME'?)` naming the one of `known` closest to an unknown `name`, for
    the message refusing it; "" when none is close (a typo, not another word: difflib's
    ratio of at least 0.6)."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class OutputConflict(ConfigError):
    """Files a run would write in its output folder are not vidpipe's (`paths`); with
    `forceable`, `--force` overwrites them (a folder where a file goes never is)."""

    def __init__(self, paths: list[Path], *, forceable: bool) -> None:
        first, more = paths[0], len(paths) - 1
        also = f" (and {more} more)" if more else ""
        if forceable:
            message = (
                f"{first} exists and was not written by vidpipe{also}: move it away, or pass "
                "--force to overwrite it"
            )
        else:
            message = f"{first} is a folder where vidpipe writes a file{also}: move it away"
        super().__init__(message)
        self.paths = paths


class FolderInUse(ConfigError):
    """Another vidpipe run (`pid`, None when it cannot be told) holds the output folder."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "its pid unknown"
        super().__init__(f"--out {folder}: in use by another vidpipe run ({who})")
        self.folder = folder
        self.pid = pid


class MediaError(PipelineError):
    """ffmpeg failed while decoding or encoding; `stderr_tail` holds its last lines."""

    def __init__(self, message: str, *, stderr_tail: str = "") -> None:
        detail = f" (ffmpeg: {_cause(stderr_tail)})" if stderr_tail.strip() else ""
        if stderr_tail.strip() and _short_of_processes(stderr_tail):
            detail = f": could not start a process or thread: {process_limit()}{detail}"
        super().__init__(message + detail)
        self.stderr_tail = stderr_tail


def process_limit() -> str:
    """What to say when a process or thread could not be started (EAGAIN): which limit, and
    what to do."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    shown = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    return (
        f"the limit on processes for this user (ulimit -u {shown}, RLIMIT_NPROC), or the "
        "system's, is reached: raise it, close other programs, or run with fewer --workers"
    )


def _short_of_processes(stderr_tail: str) -> bool:
    """Whether ffmpeg failed for want of a thread: it says so (EAGAIN's message), or this
    user's processes and threads are within ffmpeg's threads of their limit (RLIMIT_NPROC).
    ffmpeg then reports the failed start in its own words, or only what followed from it
    ("Invalid argument", "Nothing was written")."""
    return "Resource temporarily unavailable" in stderr_tail or _near_process_limit()


def _near_process_limit() -> bool:
    """Whether this user's processes and threads are within ffmpeg's threads (or a worker's
    libraries') of their limit, RLIMIT_NPROC: a process or thread started now may fail."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if soft == resource.RLIM_INFINITY or os.geteuid() == 0:  # root is not held to it
        return False
    return _user_tasks(os.getuid()) + 2 * (os.cpu_count() or 1) + 8 >= soft


def _user_tasks(uid: int) -> int:
    """Processes and threads of `uid` (what RLIMIT_NPROC counts), as /proc shows them."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            count += int(fields.get("Threads", "1"))
    return count


# ffmpeg's last words are often a consequence ("nothing was written"); these name the cause.
_CAUSES = ("No space left on device", "Permission denied", "Read-only file system", "Disk quota")


def _cause(stderr_tail: str) -> str:
    """The line of ffmpeg's stderr that best explains a failure: a system error, or the last."""
    lines = stderr_tail.strip().splitlines()
    return next((line for line in lines if any(c in line for c in _CAUSES)), lines[-1])


#: OS errors that a limit of the user's machine causes, not vidpipe: what to do about each.
_LIMITS = {
    errno.EMFILE: "too many open files for this process (ulimit -n {nofile}): raise the limit "
    "(ulimit -n 1024) or run with fewer --workers",
    errno.ENFILE: "the system's table of open files is full: close other programs and run again",
    errno.ENOSPC: "no space left on the device{where}: free space there (or choose another "
    "--out) and run again",
    errno.EDQUOT: "disk quota exceeded{where}: free space there and run again",
    errno.EAGAIN: "could not start a process or thread: {nproc}",
}
#: What Python raises when a thread cannot be started (pthread_create's EAGAIN): the same limit.
_NO_THREAD = "can't start new thread"


def user_limit(exc: BaseException) -> str | None:
    """The one line for an OS error a limit of the user's machine caused (open files, disk,
    processes), found on `exc` or what caused it; None for anything else (a bug of ours, or
    an error with its own message)."""
    import resource

    seen: BaseException | None = exc
    while seen is not None:
        code = seen.errno if isinstance(seen, OSError) else None
        if isinstance(seen, RuntimeError) and str(seen) == _NO_THREAD:
            code = errno.EAGAIN  # in this process, or a worker's, sent back
        if code in _LIMITS:
            where = f" ({seen.filename})" if isinstance(seen, OSError) and seen.filename else ""
            return _LIMITS[code].format(
                where=where,
                nofile=_soft_limit(resource.RLIMIT_NOFILE),
                nproc=process_limit(),
            )
        seen = seen.__cause__ or seen.__context__
    return None


def _soft_limit(which: int) -> str:
    import resource

    soft = resource.getrlimit(which)[0]
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft)


class StageError(PipelineError):
    """A stage raised while processing frame `index` (-1: in `setup()` or `teardown()`); the
    original error is the `__cause__`."""

    def __init__(self, *, task: str, stage: str, index: int, error: str) -> None:
        where = f" on frame {index}" if index >= 0 else ""
        super().__init__(f"task '{task}': stage '{stage}' failed{where}: {error}")
        self.task = task
        self.stage = stage
        self.index = index
        self.error = error  # what went wrong, in words


class SaveError(PipelineError):
    """The background-save thread could not write a thumbnail or checkpoint."""


class WorkerCrashed(PipelineError):
    """A worker process died without reporting a result (killed, or crashed in native code)."""

    def __init__(self, *, task: str, exitcode: int | None, worker: str = "worker process") -> None:
        message = f"task '{task}': {worker} died ({describe_exit(exitcode)})"
        if _near_process_limit():  # a library it imports failed to start its threads
            message += f": likely, could not start a process or thread: {process_limit()}"
        super().__init__(message)
        self.task = task
        self.worker = worker
        self.exitcode = exitcode


class WorkerStopped(WorkerCrashed):
    """A worker process was stopped by a signal (`signum`) that vidpipe did not send: another
    program's SIGTERM to that one worker. It cleaned up and said so; the run fails, naming
    it, rather than passing for an interruption of the whole run. A `WorkerCrashed` (the
    run lost a worker), with the exit code the signal would have given."""

    def __init__(self, *, task: str, signum: int, worker: str = "worker process") -> None:
        name = signal.Signals(signum).name
        PipelineError.__init__(self, f"task '{task}': {worker} was stopped by {name} from outside")
        self.task = task
        self.worker = worker
        self.exitcode = -signum
        self.signum = signum


class Interrupted(KeyboardInterrupt):
    """The run was interrupted by a signal (Ctrl-C or SIGTERM) and is shutting down.

    A `KeyboardInterrupt`, not a `PipelineError`: `except Exception` (in a stage, a save job)
    must never swallow an interruption, whichever signal caused it.
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.signum,))


class RemoteTraceback(Exception):
    """Carries the formatted traceback of an error raised in another process."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def reraise_interrupt(exc: BaseException) -> None:
    """Raise `exc` again if it is an interruption (Ctrl-C, SIGTERM): code that turns whatever a
    user's stage raised into an error of ours (`BaseException`, `SystemExit` included) must not
    swallow one.

    An interruption is `Interrupted` (a signal vidpipe handles), or a plain `KeyboardInterrupt`
    where Python's own SIGINT handler could have raised it (a program using the library). Where
    vidpipe handles SIGINT itself (the command line) or ignores it (a worker process), a plain
    `KeyboardInterrupt` can only be the stage's own, and fails the stage like any error."""
    if isinstance(exc, Interrupted) or (
        isinstance(exc, KeyboardInterrupt)
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        raise exc


#: The process that made SIGTERM interrupt it (`interrupt_on`); 0: none yet.
_INTERRUPTIBLE = 0


def interrupt_on(signum: int) -> None:
    """Make `signum` interrupt this process's main thread (`interrupt_on_signal`)."""
    global _INTERRUPTIBLE
    _INTERRUPTIBLE = os.getpid()
    signal.signal(signum, interrupt_on_signal)
    if not isinstance(sys.unraisablehook, _Redeliver):
        sys.unraisablehook = _Redeliver(sys.unraisablehook)


#: Seconds after which an interruption that could not be raised is delivered again.
_REDELIVER_AFTER = 0.01


class _Redeliver:
    """An unraisable-exception hook that delivers an `Interrupted` again.

    A signal's handler runs wherever the main thread is, also where Python cannot raise (an
    at-fork callback while a child process starts, a `__del__`): there the interruption would
    be printed as "Exception ignored" and lost, and the run go on, its signal ignored from
    then on. The signal is sent again, from a thread, a moment later (sent from here, its
    handler would run here, in the hook), and interrupts the code that runs then instead."""

    def __init__(self, hook: Any) -> None:
        self._hook = hook

    def __call__(self, unraisable: Any) -> None:
        error = unraisable.exc_value
        if isinstance(error, Interrupted) and os.getpid() == _INTERRUPTIBLE:
            import threading

            signal.signal(error.signum, interrupt_on_signal)
            again = threading.Timer(_REDELIVER_AFTER, os.kill, (os.getpid(), error.signum))
            again.daemon = True
            again.start()
            return
        self._hook(unraisable)


def interrupt_on_signal(signum: int, frame: object) -> None:
    """A signal handler (SIGTERM's): interrupt the main thread with `Interrupted`; the same
    signal is ignored from then on, as one clean shutdown is enough.

    A child forked before it chose its own handling inherits this handler; signalled then (a
    failing run stopping a worker it has just started), raising would print "Exception
    ignored" from inside the fork's own bookkeeping. It dies of the signal instead, as a
    process that never set a handler does."""
    if os.getpid() != _INTERRUPTIBLE:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    signal.signal(signum, signal.SIG_IGN)
    raise Interrupted(signum)


def describe_exit(exitcode: int | None) -> str:
    """Say how a process ended, from a `multiprocessing`/`subprocess` exit code."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
