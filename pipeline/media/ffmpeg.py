"""Running the bundled ffmpeg (from imageio-ffmpeg) as a child process, safely.

Every ffmpeg child has its stderr drained by a thread (an unread pipe would deadlock it), which
also samples the child's peak memory (see `pipeline.instrument.procstats.peak_rss_now`), is
reaped with `wait4` so its CPU time and peak memory are known, and is registered until reaped, so
that
`kill_all()` can end every ffmpeg this process started when a run is cancelled.

By default each child gets its own process group, so a Ctrl-C typed in the terminal reaches our
code, which shuts ffmpeg down in order, rather than killing ffmpeg behind our back. Worker
processes that lead a process group of their own call `share_process_group()`, so that the
supervisor can end a worker and its ffmpeg children in one `killpg`.

Every child also dies with the thread of ours that started it (Linux's parent-death signal,
SIGKILL): an ffmpeg in a group of its own would otherwise outlive a `kill -9` of the run, or a
stage's `os._exit`, and go on writing a file in the output folder that a later run reuses.
Each child is started, and waited for, by a thread that outlives it.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import fcntl
import functools
import math
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import IO

import imageio_ffmpeg

from ..errors import MediaError, describe_exit
from ..instrument import cpuclock, trace
from ..instrument.cpuclock import CpuTime
from ..instrument.procstats import ProcessStats, peak_rss_now, rusage_stats

__all__ = [
    "FFmpegProcess",
    "UsesFFmpeg",
    "ffmpeg_exe",
    "ffmpeg_version",
    "is_ours",
    "kill_all",
    "live_pids",
    "run_ffmpeg",
    "seek_args",
    "share_process_group",
    "url",
]

_F_SETPIPE_SZ = 1031  # Linux: grow a pipe's buffer (fewer wake-ups per frame)
_PIPE_BYTES = 1 << 20
_SAMPLE_SECONDS = 0.1  # how often a child's peak memory is read while it runs

_registry_lock = threading.Lock()
_live: set[FFmpegProcess] = set()
_own_group = True
_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:
    # Looked up once, here: a child between fork and exec should call nothing that loads.
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: no parent-death signal
    _prctl = None


def _dying_with(parent: int) -> None:
    """In the child, before exec: die (SIGKILL) when the thread that started it ends; at once
    if the parent has already gone."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg; `RuntimeError` when there is
    none, `OSError` when no process could be started to find out."""
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as exc:
        # imageio runs each candidate to check it, and takes a refused start (the limit on
        # processes reached) for "not found": a process started here tells the two apart.
        try:
            subprocess.run([sys.executable, "-S", "-c", ""], check=False)
        except OSError as refused:
            raise refused from exc
        raise


@functools.cache
def ffmpeg_version() -> str:
    """ffmpeg's version string, e.g. 'n9.0.2-17-g2a571b6068-20260930'."""
    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"ffmpeg version (\S+)", out)
    return match.group(1) if match else "unknown"


def url(path: str | os.PathLike[str]) -> str:
    """How ffmpeg is told about a file: `file:` and its absolute path.

    A bare path is parsed: `take 1: final.mp4` names a protocol `take 1`, `-x.mp4` an option.
    The `file:` protocol takes any name as it is.
    """
    return "file:" + os.path.abspath(path)


def seek_args(seconds: Fraction | None) -> list[str]:
    """ffmpeg's input option that starts at `seconds` (None or 0: the start).

    Rounded down to ffmpeg's microseconds, so that the frame at `seconds` is kept and the one
    before it (a frame duration earlier) is not.
    """
    if not seconds:
        return []
    return ["-ss", f"{math.floor(seconds * 1_000_000) / 1_000_000:.6f}"]


def share_process_group() -> None:
    """Start later ffmpeg children in this process's group instead of a group of their own."""
    global _own_group
    _own_group = False


def kill_all() -> None:
    """Kill every ffmpeg child of this process that has not been reaped yet."""
    with _registry_lock:
        live = list(_live)
    for proc in live:
        proc.kill()


def live_pids() -> list[int]:
    """The pids of the ffmpeg children of this process that have not been reaped yet."""
    with _registry_lock:
        return [proc.pid for proc in _live]


def is_ours(cmdline: list[str]) -> bool:
    """Whether a process's command line is that of an ffmpeg vidpipe starts (registered or
    not yet: an interruption may come between its start and its registration)."""
    return cmdline[:3] == [ffmpeg_exe(), "-hide_banner", "-nostdin"]


def run_ffmpeg(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg to completion with output captured (for short jobs such as probing)."""
    return subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", *args],
        capture_output=True,
        timeout=timeout,
        check=False,
        process_group=0 if _own_group else None,
        preexec_fn=functools.partial(_dying_with, os.getpid()),
    )


def _grow_pipe(stream: IO[bytes] | None) -> None:
    if stream is None:
        return
    # Not Linux, or above /proc/sys/fs/pipe-max-size: the default size works, only slower.
    with contextlib.suppress(OSError):
        fcntl.fcntl(stream.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)


class UsesFFmpeg:
    """Something that runs one ffmpeg child (`_proc`, once started): its pid and its stats,
    and the time spent on its pipe (`cpu`: on a CPU copying frames, or waiting for ffmpeg)."""

    _proc: FFmpegProcess | None = None
    cpu: CpuTime

    @property
    def wait_seconds(self) -> float:
        """Wall seconds spent on the pipe: handing frames over or waiting for them."""
        return self.cpu.wall / 1e9

    def _on_pipe(self, phase: str, begin: cpuclock.Reading) -> None:
        """Count the span from `begin` to now as time on the pipe, in `phase` on the trace."""
        end = cpuclock.read()
        self.cpu = self.cpu.add(begin, end)
        trace.span(phase, "io", begin.wall, end.wall)

    @property
    def pid(self) -> int | None:
        """The ffmpeg child's process id, once started."""
        return self._proc.pid if self._proc else None

    @property
    def stats(self) -> ProcessStats | None:
        """CPU time and peak memory of the ffmpeg child, once it has been reaped."""
        return self._proc.stats if self._proc else None


class FFmpegProcess:
    """An ffmpeg child streaming raw frames through its stdin and/or stdout.

    `wait()` returns the exit code; `stats` then holds the child's CPU time and peak memory.
    """

    def __init__(self, args: list[str], *, role: str, stdin: bool, stdout: bool) -> None:
        self.role = role
        self._lock = threading.Lock()
        self._reaped = False
        self._tail: collections.deque[str] = collections.deque(maxlen=30)
        self.stats: ProcessStats | None = None
        self.returncode: int | None = None
        self.killed = False
        self._started = time.time()
        self._inherited = peak_rss_now()  # what the kernel may carry into the child's ru_maxrss
        self._sampled = 0
        self._proc = subprocess.Popen(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            bufsize=0,
            process_group=0 if _own_group else None,
            preexec_fn=functools.partial(_dying_with, os.getpid()),
        )
        self.pid = self._proc.pid
        with _registry_lock:
            _live.add(self)
        try:
            _grow_pipe(self._proc.stdin)
            _grow_pipe(self._proc.stdout)
            self._drain = threading.Thread(
                target=self._drain_stderr, name=f"stderr-{role}", daemon=True
            )
            self._drain.start()  # may fail: the limit on threads reached
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Kill and reap a child this object could not finish starting: nobody would stop it,
        and it would go on writing a partial output after the run has swept them away."""
        self.kill()
        with self._lock:
            os.waitpid(self.pid, 0)
            self._reaped = True
        drain = getattr(self, "_drain", None)
        if drain is not None and drain.ident is not None:  # started (a signal came after)
            drain.join()  # ends at EOF, now that ffmpeg is dead: then its pipe may close
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()
        with _registry_lock:
            _live.discard(self)

    @property
    def stdin(self) -> IO[bytes]:
        assert self._proc.stdin is not None
        return self._proc.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self._proc.stdout is not None
        return self._proc.stdout

    def _drain_stderr(self) -> None:
        stream = self._proc.stderr
        assert stream is not None
        pending = b""
        # Sampled often at first, so that a child that lives only some milliseconds (joining
        # pieces, probing) is seen near its peak, then every _SAMPLE_SECONDS.
        interval = 0.002
        while True:
            with self._lock:
                if not self._reaped:  # a reaped pid may already be someone else's
                    self._sampled = max(self._sampled, peak_rss_now(self.pid))
            ready, _, _ = select.select([stream], [], [], interval)
            interval = min(2 * interval, _SAMPLE_SECONDS)
            if not ready:
                continue
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            self._tail.extend(line.decode(errors="replace").rstrip() for line in lines)
        if pending:
            self._tail.append(pending.decode(errors="replace").rstrip())

    def stderr_tail(self) -> str:
        """The last lines ffmpeg wrote to stderr (complete once `wait()` has returned)."""
        return "\n".join(self._tail)

    def check(self, what: str) -> None:
        """Wait for ffmpeg; raise `MediaError` ("<what> failed (exit code 1)", with the cause
        from its stderr) if it failed."""
        if self.wait() != 0:
            raise MediaError(
                f"{what} failed ({describe_exit(self.returncode)})",
                stderr_tail=self.stderr_tail(),
            )

    def stop(self) -> None:
        """Kill ffmpeg if it still runs, and reap it (safe to repeat)."""
        self.kill()
        self.wait()

    def __enter__(self) -> FFmpegProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kill(self) -> None:
        """Kill the process if it has not been reaped (safe from any thread, and repeatable)."""
        with self._lock:
            if not self._reaped:
                self.killed = True
                # Not Popen.kill(): it polls first and may reap the process, racing wait().
                os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> int:
        """Wait for exit, reap, record stats; close our pipe ends. Returns the exit code."""
        if self._reaped:
            assert self.returncode is not None
            return self.returncode
        # Wait without reaping first, so that kill() never signals a reaped (reusable) pid.
        os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        with self._lock:
            _, status, usage = os.wait4(self.pid, 0)
            self._reaped = True
        self.returncode = self._proc.returncode = os.waitstatus_to_exitcode(status)
        self.stats = rusage_stats(
            self.pid,
            self.role,
            usage,
            started=self._started,
            inherited=self._inherited,
            sampled=self._sampled,
        )
        self._drain.join()
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None:
                with contextlib.suppress(BrokenPipeError):  # unflushed bytes, process gone
                    stream.close()
        with _registry_lock:
            _live.discard(self)
        return self.returncode
