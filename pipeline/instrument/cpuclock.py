"""Where a thread's time goes: on a CPU, waiting for a core, or blocked.

Over a span of a thread's life (a stage on one frame, say), three clocks are read at each end:
the wall clock (`perf_counter_ns`), the thread's own CPU time (`thread_time_ns`), and the time
it spent runnable but waiting for a core (`run_delay`, the second field of Linux's
`/proc/thread-self/schedstat`). What is left of the wall time once both are taken away, the
thread was blocked: not running, and not asking to. In a stage that does no I/O, that is
waiting for the GIL. Each reading costs about a microsecond (the schedstat file stays open, one
per thread), so every stage of every frame is measured; nothing is sampled.

Where schedstat cannot be read (not Linux, or a kernel without schedstats), `waiting` is None
and the blocked time includes the waits for a core. `VIDPIPE_CPU_CLOCK=0` turns the readings off
(for measuring what they cost; `scripts/bench_cpu_clock.py`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["ENABLED", "CpuLedger", "CpuTime", "Reading", "read"]

ENABLED = os.environ.get("VIDPIPE_CPU_CLOCK", "1") != "0"


class Reading(NamedTuple):
    """The calling thread's clocks at one moment, in nanoseconds (`waiting`: None if unknown)."""

    wall: int
    on_cpu: int
    waiting: int | None


class _Schedstat(threading.local):
    """This thread's schedstat file, opened once (in this process: a forked child opens its own)."""

    fd: int | None = None
    pid: int = 0
    broken: bool = False

    def run_delay(self) -> int | None:
        if self.broken:
            return None
        if self.fd is None or self.pid != os.getpid():
            try:
                self.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self.broken = True
                return None
            self.pid = os.getpid()
        try:
            return int(os.pread(self.fd, 64, 0).split()[1])
        except (OSError, ValueError, IndexError):
            self.broken = True
            return None

    def __del__(self) -> None:
        if self.fd is not None and self.pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self.fd)


_schedstat = _Schedstat()


def read() -> Reading:
    """The calling thread's clocks now; all zero when the readings are off."""
    if not ENABLED:
        return Reading(time.perf_counter_ns(), 0, None)
    return Reading(time.perf_counter_ns(), time.thread_time_ns(), _schedstat.run_delay())


@dataclass
class CpuTime:
    """Time summed over spans (and threads, and processes), in nanoseconds."""

    wall: int = 0
    on_cpu: int = 0
    waiting: int | None = 0  # None once any span could not tell

    @property
    def blocked(self) -> int:
        """Neither on a CPU nor waiting for one: blocked (on the GIL, in a stage without I/O)."""
        return max(0, self.wall - self.on_cpu - (self.waiting or 0))

    def add(self, begin: Reading, end: Reading) -> CpuTime:
        """This time with the span from `begin` to `end` (two readings of one thread) added.

        The CPU clock and the scheduler's run delay are kept apart in the kernel and do not
        tick exactly together: a span's CPU time is capped at its wall time, and its wait for a
        core at what is left, so that the three parts add up to the wall time.
        """
        wall = end.wall - begin.wall
        on_cpu = min(end.on_cpu - begin.on_cpu, wall)
        waits = None
        if self.waiting is not None and begin.waiting is not None and end.waiting is not None:
            waits = self.waiting + min(end.waiting - begin.waiting, wall - on_cpu)
        return CpuTime(self.wall + wall, self.on_cpu + on_cpu, waits)

    def __add__(self, other: CpuTime) -> CpuTime:
        waits = None
        if self.waiting is not None and other.waiting is not None:
            waits = self.waiting + other.waiting
        return CpuTime(self.wall + other.wall, self.on_cpu + other.on_cpu, waits)


class CpuLedger:
    """`CpuTime` by name (a stage, "digest", "saves"), added to from any thread."""

    def __init__(self) -> None:
        self._times: dict[str, CpuTime] = {}
        self._lock = threading.Lock()

    def add(self, name: str, begin: Reading, end: Reading) -> CpuTime:
        """Add a span to `name`; returns the span alone (for a trace event's arguments)."""
        span = CpuTime().add(begin, end)
        with self._lock:
            self._times[name] = self._times.get(name, CpuTime()) + span
        return span

    def merge(self, times: dict[str, CpuTime]) -> None:
        """Add what another ledger measured (a pool worker's, a segment's)."""
        with self._lock:
            for name, spent in times.items():
                self._times[name] = self._times.get(name, CpuTime()) + spent

    def snapshot(self) -> dict[str, CpuTime]:
        with self._lock:
            return dict(self._times)
