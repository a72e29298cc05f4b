"""How busy the rest of the machine was while we measured: CPU time other processes used.

The kernel counts every CPU's busy time in /proc/stat; this process's own CPU time comes from
`getrusage`. Their difference over a span is what other processes (and the kernel's work for
them) took from the cores while we measured: a timing taken while it was large is not the
work's own. Steal time (a virtual machine's host running someone else on our CPUs) is kept
apart. Linux only; elsewhere nothing is known and `Load.foreign_cores` is None.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Load", "LoadReading", "read"]


@dataclass(frozen=True)
class Load:
    """What the machine did over a span besides this process."""

    wall_seconds: float
    foreign_cpu_seconds: float | None  # None: not known on this system
    steal_seconds: float | None

    @property
    def foreign_cores(self) -> float | None:
        """Cores other processes kept busy on average over the span."""
        if self.foreign_cpu_seconds is None or self.wall_seconds <= 0:
            return None
        return self.foreign_cpu_seconds / self.wall_seconds


@dataclass(frozen=True)
class LoadReading:
    """One reading of the clocks `Load` is the difference of."""

    wall: float
    own_cpu: float
    busy: float | None  # all CPUs' busy seconds since boot
    steal: float | None

    def until_now(self) -> Load:
        """The load from this reading until now."""
        now = read()
        if self.busy is None or now.busy is None or self.steal is None or now.steal is None:
            return Load(now.wall - self.wall, None, None)
        foreign = (now.busy - self.busy) - (now.own_cpu - self.own_cpu)
        return Load(now.wall - self.wall, max(0.0, foreign), now.steal - self.steal)


def _cpu_line() -> tuple[float, float] | tuple[None, None]:
    try:
        with Path("/proc/stat").open() as stat:
            fields = stat.readline().split()
    except OSError:
        return None, None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None, None
    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal: busy is all but idle, iowait and steal.
    user, nice, system, _, _, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq) / tick, steal / tick


def read() -> LoadReading:
    """The clocks now."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    busy, steal = _cpu_line()
    return LoadReading(time.monotonic(), usage.ru_utime + usage.ru_stime, busy, steal)
