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
import enum
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..instrument.cpuclock import CpuTime
from ..instrument.procstats import ProcessStats, concurrent_peak
from ..plan.outdir import atomic_write_bytes
from .schema import fits, typed_fields

__all__ = [
    "CPU_PHASES",
    "CpuBreakdown",
    "NodeStats",
    "Phase",
    "RunReport",
    "TaskResult",
    "WorkerStats",
]


@dataclass(frozen=True)
class WorkerStats:
    """How one frame worker (a thread or a process of a pool) spent its time."""

    name: str
    pid: int
    frames: int
    busy_seconds: float
    wait_seconds: float = 0.0
    copy_seconds: float = 0.0


class Phase(enum.StrEnum):
    """What a task's thread spends its time on, besides its stages (`TaskResult.phase_seconds`).

    Values are the keys of `timings` in `report.json`.
    """

    DECODE = "decode"  # waiting for the decoder's frames
    TRANSCODE = "transcode"  # waiting for frames from an ffmpeg that also encodes them
    POOL = "pool"  # waiting for a frame pool's results
    COPY = "copy"  # moving frames to and from pool processes (summed over the workers)
    DIGEST = "digest"  # hashing frames
    ENCODE = "encode"  # blocked handing frames to the encoder
    SAVES = "saves"  # queueing thumbnails and checkpoints


@dataclass(frozen=True)
class CpuBreakdown:
    """Where a stage's (or a phase's) time went, in seconds, summed over every thread and
    process that ran it: on a CPU, runnable but waiting for a core (None where the platform
    cannot tell), and blocked: neither, which in a stage that does no I/O is waiting for the
    GIL (`pipeline.instrument.cpuclock`)."""

    on_cpu: float
    waiting_for_core: float | None
    blocked: float

    @classmethod
    def of(cls, spent: CpuTime) -> CpuBreakdown:
        waiting = spent.waiting / 1e9 if spent.waiting is not None else None
        return cls(spent.on_cpu / 1e9, waiting, spent.blocked / 1e9)

    @property
    def wall(self) -> float:
        return self.on_cpu + (self.waiting_for_core or 0.0) + self.blocked

    @property
    def blocked_share(self) -> float:
        """The share of the wall time spent blocked."""
        return self.blocked / self.wall if self.wall > 0 else 0.0

    def __add__(self, other: CpuBreakdown) -> CpuBreakdown:
        waits = None
        if self.waiting_for_core is not None and other.waiting_for_core is not None:
            waits = self.waiting_for_core + other.waiting_for_core
        return CpuBreakdown(self.on_cpu + other.on_cpu, waits, self.blocked + other.blocked)


#: The share of a stage's time spent blocked from which the run names the GIL as where it went.
#: Two threads taking turns each wait about half; the pool filling and draining, and ffmpeg
#: taking a core, bring it down to about 0.35 to 0.45 on the gil-bound sample with 2 cores.
GIL_WAIT = 0.25

#: Phases whose time `cpu_breakdown` reports beside the stages': the task thread's reading from
#: and writing to ffmpeg's pipes (blocked there means waiting for ffmpeg, not for the GIL), and
#: its digests and saves.
CPU_PHASES = ("decode", "transcode", "encode", "digest", "saves")

#: The prefix of a stage's entry in the flat `timings` of `report.json`.
_STAGE = "stage "


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
    fps: Fraction
    input_bytes: int
    output_bytes: int
    size_fix: str | None
    audio: str | None
    thumbnails: int
    processes: list[ProcessStats] = field(default_factory=list)
    workers: list[WorkerStats] = field(default_factory=list)
    #: Seconds the task spent in each phase (`Phase`).
    phase_seconds: dict[Phase, float] = field(default_factory=dict)
    #: Seconds spent in each stage, by its name, summed over frames (and a pool's workers).
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: Frames an earlier, interrupted run had finished (`--resume`); `frames` includes them.
    resumed_frames: int = 0
    #: Where each stage's time went, by stage name, and the digest's and the saves'
    #: (`CPU_PHASES`), summed over every thread and process that ran them.
    cpu_breakdown: dict[str, CpuBreakdown] = field(default_factory=dict)
    #: Why the layout ran the task's frames in order, where it would have spread them over a
    #: pool or segments (a stage carries state from frame to frame); None when it did not.
    in_order: str | None = None
    #: The job's identity (`pipeline.plan.identity.job_key`): the input's content, the
    #: stages, their code and the encoder's settings, so that `predict --from` can tell a run
    #: of the same job; None in a checkpoint's result, where the checkpoint records it.
    job: dict[str, Any] | None = None

    @property
    def compression_ratio(self) -> float:
        """Input size divided by output size (above 1 means the output is smaller)."""
        return self.input_bytes / self.output_bytes if self.output_bytes else 0.0

    @property
    def timings(self) -> dict[str, float]:
        """Every phase and stage with its seconds, as `report.json` lists them: the phases by
        their names, each stage as "stage <name>"."""
        phases = {phase.value: spent for phase, spent in self.phase_seconds.items()}
        stages = {f"{_STAGE}{name}": spent for name, spent in self.stage_seconds.items()}
        return {**phases, **stages}

    def bottleneck(self) -> tuple[str, float]:
        """The phase that took the task's thread the most time, and its share of the task.

        When the thread mostly waited for a frame pool, the pool's slowest stage is named.
        """
        if not (self.phase_seconds or self.stage_seconds) or self.seconds <= 0:
            return ("", 0.0)
        pooled = self.phase_seconds.get(Phase.POOL, 0.0) > 0
        # With a pool, stage and copy times are summed over its workers, not the task's thread.
        own = {
            phase.value: spent
            for phase, spent in self.phase_seconds.items()
            if phase is not (Phase.COPY if pooled else Phase.POOL)
        }
        if not pooled:
            own.update({f"{_STAGE}{name}": spent for name, spent in self.stage_seconds.items()})
        phase, spent = max(own.items(), key=lambda item: item[1])
        if phase == Phase.POOL and self.stage_seconds:
            slowest = max(self.stage_seconds, key=lambda name: self.stage_seconds[name])
            phase = f"waiting for the pool's {_STAGE}{slowest}"
        # Segments add up the phases of pieces that ran side by side: their sum can pass the
        # task's wall time, and is then the whole the share is taken of.
        return (phase, spent / max(self.seconds, sum(own.values())))

    def gil_wait(self) -> tuple[str, float] | None:
        """(stage, its blocked share) for the stage that took the most time, when waiting for
        the GIL was a main part of it: the largest of its three parts, or `GIL_WAIT` of its time
        (two threads taking turns on it each wait about half); else None."""
        stages = {k: v for k, v in self.cpu_breakdown.items() if k not in CPU_PHASES}
        if not stages:
            return None
        name, spent = max(stages.items(), key=lambda item: item[1].wall)
        largest = spent.blocked >= max(spent.on_cpu, spent.waiting_for_core or 0.0)
        if spent.blocked > 0 and (largest or spent.blocked_share >= GIL_WAIT):
            return name, spent.blocked_share
        return None

    def verdict(self) -> str:
        """Where the task's time went, in words: the bottleneck, or the GIL when a stage spent
        most of its time waiting for it."""
        gil = self.gil_wait()
        if gil is not None:
            return f"{gil[0]} waited for the GIL {gil[1]:.0%} of its time"
        phase, share = self.bottleneck()
        return f"most time went to {phase} ({share:.0%} of {self.seconds:.2f} s)" if phase else ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["name"], data["processes"], data["phase_seconds"], data["stage_seconds"]
        data["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        data["timings"] = self.timings
        data["compression_ratio"] = round(self.compression_ratio, 4)
        return data

    @classmethod
    def from_dict(cls, name: str, data: Any) -> TaskResult:
        """The result `to_dict` described (its processes are not kept); `ValueError` saying
        what is wrong when `data` is not one (a field missing or of another type)."""
        skip = frozenset(
            {"name", "processes", "fps", "phase_seconds", "stage_seconds", "cpu_breakdown"}
        )
        values = typed_fields(cls, data, skip=skip)
        values["workers"] = [
            WorkerStats(**typed_fields(WorkerStats, w)) for w in values.get("workers", [])
        ]
        if not isinstance(data.get("fps"), str):
            raise ValueError(
                f"TaskResult.fps must be a rate such as '25/1', got {data.get('fps')!r}"
            )
        try:
            values["fps"] = Fraction(data["fps"])
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"TaskResult.fps: {exc}") from exc
        timings = data.get("timings", {})
        if not fits(timings, "dict[str, float]"):
            raise ValueError(f"TaskResult.timings must map names to seconds, got {timings!r}")
        phases = {p.value for p in Phase}
        values["phase_seconds"] = {Phase(k): v for k, v in timings.items() if k in phases}
        values["stage_seconds"] = {
            k.removeprefix(_STAGE): v for k, v in timings.items() if k.startswith(_STAGE)
        }
        breakdown = data.get("cpu_breakdown", {})
        if not isinstance(breakdown, dict):
            raise ValueError(f"TaskResult.cpu_breakdown must be an object, got {breakdown!r}")
        values["cpu_breakdown"] = {
            str(k): CpuBreakdown(**typed_fields(CpuBreakdown, v)) for k, v in breakdown.items()
        }
        return cls(name=name, **values)


@dataclass(frozen=True)
class NodeStats:
    """What one node of a cluster did in a run (`ray` layout): segments run, their frames and
    seconds busy, `bytes_in` (the cuts its segments decoded; a cut both tasks use on one node
    travels there once) and `bytes_out` (pieces, frame digests and thumbnails sent back)."""

    segments: int = 0
    frames: int = 0
    busy_seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass(frozen=True)
class RunReport:
    """Everything measured in one run."""

    layout: str
    wall_seconds: float
    input: dict[str, Any]
    tasks: dict[str, TaskResult]
    processes: list[ProcessStats]
    environment: dict[str, Any]
    #: Per node of a cluster (`ray` layout), by host name and node id.
    nodes: dict[str, NodeStats] = field(default_factory=dict)

    @property
    def peak_rss_bytes_total(self) -> int:
        """Peak resident memory summed over the processes alive together (`concurrent_peak`)."""
        return concurrent_peak(self.processes)

    @classmethod
    def from_dict(cls, data: Any) -> RunReport:
        """The report `to_dict` described (a `report.json`); `ValueError` saying what is wrong
        when `data` is not one: a field missing or of another type, at any depth."""
        values = typed_fields(cls, data)
        values["tasks"] = {k: TaskResult.from_dict(k, v) for k, v in values["tasks"].items()}
        values["processes"] = [
            ProcessStats(**typed_fields(ProcessStats, p)) for p in data["processes"]
        ]
        nodes = values.get("nodes", {})
        values["nodes"] = {k: NodeStats(**typed_fields(NodeStats, v)) for k, v in nodes.items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "wall_seconds": self.wall_seconds,
            "input": self.input,
            "tasks": {name: result.to_dict() for name, result in self.tasks.items()},
            "processes": [dataclasses.asdict(p) for p in self.processes],
            "peak_rss_bytes_total": self.peak_rss_bytes_total,
            "environment": self.environment,
            **(
                {"nodes": {k: dataclasses.asdict(v) for k, v in self.nodes.items()}}
                if self.nodes
                else {}
            ),
        }

    def write(self, path: Path) -> None:
        """Write the report as JSON, atomically."""
        atomic_write_bytes(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode())
