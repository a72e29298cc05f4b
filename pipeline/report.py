"""The run report: numbers in dataclasses, turned into JSON only at the edge.

`RunReport.to_dict()` gives the layout of `DIR/report.json`:

    {"layout": ..., "wall_seconds": ..., "input": {...probe...},
     "tasks": {"compress": {"frames": ..., "seconds": ..., "output": ..., "frame_digest": ...,
                            "pid": ..., "threads": [...], ...}, ...},
     "processes": [{"pid": ..., "role": ..., "cpu_seconds": ..., "peak_rss_bytes": ...}, ...],
     "environment": {...}}
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .outdir import atomic_write_bytes

__all__ = [
    "ProcessStats",
    "RunReport",
    "TaskResult",
    "WorkerStats",
    "concurrent_peak",
    "peak_rss_now",
    "self_stats",
]


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


@dataclass(frozen=True)
class WorkerStats:
    """How one frame worker (a thread or a process of a pool) spent its time."""

    name: str
    pid: int
    frames: int
    busy_seconds: float
    wait_seconds: float = 0.0
    copy_seconds: float = 0.0


@dataclass(frozen=True)
class TaskResult:
    """What one task produced and how long it took."""

    name: str
    frames: int
    seconds: float
    output: str
    frame_digest: str
    pid: int
    threads: list[str]
    stages: list[str]
    decode_format: str
    width: int
    height: int
    fps: str
    input_bytes: int
    output_bytes: int
    size_fix: str | None
    audio: str | None
    thumbnails: int
    processes: list[ProcessStats] = field(default_factory=list)
    workers: list[WorkerStats] = field(default_factory=list)
    #: Seconds the task spent in each phase: "decode" (waiting for frames), "stage <name>",
    #: "pool" (waiting for a frame pool), "copy" (moving frames to and from pool processes),
    #: "digest", "encode" (blocked handing frames to the encoder), "saves" (queueing saves).
    timings: dict[str, float] = field(default_factory=dict)
    #: Frames an earlier, interrupted run had finished (`--resume`); `frames` includes them.
    resumed_frames: int = 0

    @property
    def compression_ratio(self) -> float:
        """Input size divided by output size (above 1 means the output is smaller)."""
        return self.input_bytes / self.output_bytes if self.output_bytes else 0.0

    def bottleneck(self) -> tuple[str, float]:
        """The phase that took the task's thread the most time, and its share of the task.

        When the thread mostly waited for a frame pool, the pool's slowest stage is named.
        """
        if not self.timings or self.seconds <= 0:
            return ("", 0.0)
        stages = {k: v for k, v in self.timings.items() if k.startswith("stage ")}
        pooled = self.timings.get("pool", 0.0) > 0
        # With a pool, stage and copy times are summed over its workers, not the task's thread.
        own = {
            k: v
            for k, v in self.timings.items()
            if not (pooled and (k in stages or k == "copy")) and (pooled or k != "pool")
        }
        phase, spent = max(own.items(), key=lambda item: item[1])
        if phase == "pool" and stages:
            phase = f"waiting for the pool's {max(stages, key=lambda k: stages[k])}"
        # Segments add up the phases of pieces that ran side by side: their sum can pass the
        # task's wall time, and is then the whole the share is taken of.
        return (phase, spent / max(self.seconds, sum(own.values())))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["name"], data["processes"]
        data["compression_ratio"] = round(self.compression_ratio, 4)
        return data

    @classmethod
    def from_dict(cls, name: str, data: Any) -> TaskResult:
        """The result `to_dict` described (its processes are not kept); `ValueError` saying
        what is wrong when `data` is not one (a field missing or of another type)."""
        values = _typed_fields(cls, data, skip=frozenset({"name", "processes"}))
        values["workers"] = [
            WorkerStats(**_typed_fields(WorkerStats, w)) for w in values.get("workers", [])
        ]
        return cls(name=name, **values)


_SCALARS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "None": (type(None),),
}


def _is(value: Any, annotation: str) -> bool:
    """Whether `value` (from JSON) fits the type `annotation` names, as written in this module:
    scalars, `X | None`, `list[X]`, `dict[str, X]`, and the dataclasses (as objects)."""
    if " | " in annotation:
        return any(_is(value, part) for part in annotation.split(" | "))
    if annotation.startswith("list["):
        return isinstance(value, list) and all(_is(v, annotation[5:-1]) for v in value)
    if annotation.startswith("dict[str, "):
        inner = annotation[10:-1]
        return isinstance(value, dict) and all(_is(v, inner) for v in value.values())
    if annotation in _SCALARS:
        if isinstance(value, bool) and annotation in ("int", "float"):
            return False
        return isinstance(value, _SCALARS[annotation])
    return isinstance(value, dict)  # a dataclass, checked by its own _typed_fields


def _typed_fields(cls: type, data: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields of dataclass `cls` from `data`, each checked against its annotation;
    `ValueError` naming the first that is missing or of another type. Unknown keys are left."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} must be an object, got {type(data).__name__}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{cls.__name__} has no '{f.name}'")
            continue
        if not _is(data[f.name], str(f.type)):
            raise ValueError(f"{cls.__name__}.{f.name} must be {f.type}, got {data[f.name]!r}")
        values[f.name] = data[f.name]
    return values


@dataclass(frozen=True)
class RunReport:
    """Everything measured in one run."""

    layout: str
    wall_seconds: float
    input: dict[str, Any]
    tasks: dict[str, TaskResult]
    processes: list[ProcessStats]
    environment: dict[str, Any]
    #: Per node of a cluster (`ray` layout): segments run, frames, seconds busy, `bytes_in` (the
    #: cuts its segments decoded; a cut both tasks use on one node travels there once) and
    #: `bytes_out` (pieces, frame digests and thumbnails sent back to the driver).
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def peak_rss_bytes_total(self) -> int:
        """Peak resident memory summed over the processes alive together (`concurrent_peak`)."""
        return concurrent_peak(self.processes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "wall_seconds": self.wall_seconds,
            "input": self.input,
            "tasks": {name: result.to_dict() for name, result in self.tasks.items()},
            "processes": [dataclasses.asdict(p) for p in self.processes],
            "peak_rss_bytes_total": self.peak_rss_bytes_total,
            "environment": self.environment,
            **({"nodes": self.nodes} if self.nodes else {}),
        }

    def write(self, path: Path) -> None:
        """Write the report as JSON, atomically."""
        atomic_write_bytes(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode())
