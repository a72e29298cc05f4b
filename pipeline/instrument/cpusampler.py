"""How many cores each process of a run keeps busy, over time, for the trace.

The decoders and encoders are ffmpeg processes: most of a serial run's CPU time, and invisible
on a timeline of Python's threads. While a run is traced, a thread of the main process reads
every process of the run (this one and every descendant: task processes, pool workers, ffmpeg)
from `/proc/<pid>/stat` every `INTERVAL` seconds, and records as trace counters the cores each
used since the last reading ("CPU (cores)", on that process's track) and their sum ("cores
busy", on this process's track). The kernel counts CPU time in clock ticks (10 ms), so one
reading is coarse; the curve over a run is not.

Linux only (elsewhere it records nothing); processes outside this tree (Ray's workers) are not
seen.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import TracebackType

from ..plan.outdir import PART_SUFFIX
from . import trace

__all__ = ["INTERVAL", "CpuSampler"]

#: Seconds between readings.
INTERVAL = 0.05
_TICK = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc/<pid>/task/<tid>/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        tasks = Path(f"/proc/{current}/task")
        try:
            tids = [entry.name for entry in tasks.iterdir()]
        except OSError:
            continue
        for tid in tids:
            try:
                todo += [int(c) for c in (tasks / tid / "children").read_text().split()]
            except (OSError, ValueError):
                continue
    return found


def _cpu_ticks(pid: int) -> int | None:
    """User and system CPU time of process `pid`, all its threads, in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


def _ffmpeg_name(pid: int) -> str | None:
    """`ffmpeg writing rendered.mp4` for an ffmpeg child; None for any other process."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    if not args or "ffmpeg" not in Path(args[0]).name:
        return None
    output = next((a for a in args if a.endswith(PART_SUFFIX)), None)
    if output is None:
        return "ffmpeg decoding"
    return "ffmpeg writing " + Path(output).name.removeprefix(".").removesuffix(PART_SUFFIX)


class CpuSampler:
    """Records the cores each process of the run uses while the `with` block runs (when this
    process is being traced)."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._last: dict[int, int] = {}
        self._named: set[int] = set()

    def __enter__(self) -> CpuSampler:
        if trace.active() and Path("/proc/self/stat").exists():
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        me = os.getpid()
        then = time.monotonic()
        while not self._stop.wait(self._interval):
            now = time.monotonic()
            busy = 0.0
            for pid in _descendants(me):
                ticks = _cpu_ticks(pid)
                if ticks is None:
                    continue
                before = self._last.get(pid)
                self._last[pid] = ticks
                if before is None:
                    self._name(pid)
                    continue
                cores = (ticks - before) * _TICK / (now - then)
                busy += cores
                trace.counter("CPU (cores)", round(cores, 2), pid=pid)
            trace.counter("cores busy", round(busy, 2))
            then = now

    def _name(self, pid: int) -> None:
        name = _ffmpeg_name(pid)
        if name is not None:
            trace.name_process(pid, name)
