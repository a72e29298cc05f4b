"""The CPU time and peak memory of each process of a run, as the kernel measures them.

Every process reports its own (`self_stats`); ffmpeg children are measured when reaped
(`rusage_stats`) and sampled while they run (`peak_rss_now`); `concurrent_peak` sums the peaks of
the processes alive together.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessStats", "concurrent_peak", "peak_rss_now", "rusage_stats", "self_stats"]


@dataclass(frozen=True)
class ProcessStats:
    """CPU time and peak resident memory of one process of the run, measured by the kernel.

    `started` and `ended` (Unix time; 0 when unknown) say when it lived, so that processes that
    ran one after the other are not counted as if they ran together.
    """

    pid: int
    role: str
    cpu_seconds: float
    peak_rss_bytes: int
    started: float = 0.0
    ended: float = 0.0


def peak_rss_now(pid: int | None = None) -> int:
    """Peak resident memory so far, in bytes, of the program process `pid` (default: this one)
    runs now: `VmHWM` from /proc on Linux, 0 where that is not available.

    Unlike `ru_maxrss`, it starts afresh when a process executes a new program: the kernel
    carries a parent's peak into `ru_maxrss` of every child it starts, so an ffmpeg or a
    spawned worker started by a 300 MB parent would report at least 300 MB.
    """
    try:
        with open(f"/proc/{pid or 'self'}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rusage_stats(
    pid: int,
    role: str,
    usage: resource.struct_rusage,
    *,
    started: float = 0.0,
    inherited: int = 0,
    sampled: int = 0,
) -> ProcessStats:
    """ProcessStats from a `getrusage`/`wait4` record (ru_maxrss: KiB on Linux, bytes on macOS),
    taken when the process ended (now).

    For a child, `inherited` is the starting process's `peak_rss_now()` when it started it:
    a `ru_maxrss` no larger than that may be the parent's, not the child's, and `sampled` (the
    largest `peak_rss_now(pid)` seen while the child ran) is taken instead, when there is one.
    """
    scale = 1 if sys.platform == "darwin" else 1024
    peak = usage.ru_maxrss * scale
    if peak <= inherited and sampled:
        peak = sampled
    return ProcessStats(
        pid=pid,
        role=role,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_bytes=peak,
        started=started,
        ended=time.time(),
    )


def _start_time() -> float:
    """When this process started (Unix time), from /proc on Linux; 0 elsewhere."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def self_stats(role: str) -> ProcessStats:
    """This process's own CPU time and peak RSS so far (children not included; for a worker
    started by exec, such as a `spawn` worker, not its parent's either)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = rusage_stats(os.getpid(), role, usage, started=_start_time())
    own = peak_rss_now()
    return dataclasses.replace(stats, peak_rss_bytes=own) if own else stats


def concurrent_peak(processes: list[ProcessStats]) -> int:
    """The largest sum of peak resident memory over processes alive at the same moment.

    Still an upper bound (each process's peak counts as if it lasted its whole life, and shared
    pages count in each process), but processes that ran one after the other, such as segment
    workers or the ffmpeg processes of successive pieces, no longer add up. A process whose
    times are unknown counts as alive throughout.
    """
    events: list[tuple[float, int, int]] = []
    always = 0
    for p in processes:
        if p.started and p.ended:
            events += [(p.started, 1, p.peak_rss_bytes), (p.ended, 0, -p.peak_rss_bytes)]
        else:
            always += p.peak_rss_bytes
    peak = alive = 0
    for _, _, change in sorted(events):  # at equal times, ends before starts
        alive += change
        peak = max(peak, alive)
    return always + peak
