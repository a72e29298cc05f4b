"""Run configuration: frozen dataclasses validated once, when they are built.

Strings are parsed only at the edges (the command line); everything below works with these types.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .layout_file import LayoutFile

__all__ = [
    "MAX_FRAME_SIDE",
    "PRESETS",
    "AnimationSettings",
    "EncoderSettings",
    "RunOptions",
    "StageSpec",
    "StartMethod",
    "Transport",
    "thread_limit",
    "usable_cores",
]

PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


#: The largest frame side vidpipe decodes or encodes, in pixels (H.264's largest level, 6.2,
#: goes to 8192 pixels a side): larger frames only exhaust memory.
MAX_FRAME_SIDE = 8192
#: The most particles, position samples and glow passes the animation takes: each costs
#: memory or time on every frame, and more only makes a run that never finishes.
MAX_PARTICLES = 100_000
MAX_SAMPLES = 10_000
MAX_GLOW = 100
#: The most segments a `ray` run may ask for: a cluster's CPUs are not known before it runs.
MAX_CLUSTER_WORKERS = 4096


def usable_cores() -> int:
    """Cores this process may run on (affinity and cgroup-free count), at least 1."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_limit() -> int:
    """The most threads or processes an option may ask for on this machine: 4 per usable
    core (at least 8). More only share the same cores, and enough of them exhaust the
    machine's threads or memory."""
    return max(8, 4 * usable_cores())


class Transport(enum.StrEnum):
    """How frames travel between a task's process and its pool workers (`pool` layout)."""

    PICKLE = "pickle"
    SHM = "shm"


class StartMethod(enum.StrEnum):
    """How worker processes are started (see `multiprocessing` start methods)."""

    SPAWN = "spawn"
    FORKSERVER = "forkserver"
    FORK = "fork"


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class EncoderSettings:
    """libx264 settings of an output: constant rate factor, preset and encoder threads.

    `threads` 0 lets x264 choose (usually one per core); 1 pins the encoder to one core so that
    the layout is the only parallelism.
    """

    crf: int = 23
    preset: str = "veryfast"
    threads: int = 0

    def __post_init__(self) -> None:
        _check(0 <= self.crf <= 51, f"--crf must be between 0 and 51, got {self.crf}")
        _check(self.preset in PRESETS, f"--preset must be one of {', '.join(PRESETS)}")
        _check(self.threads >= 0, f"--encoder-threads must be 0 (auto) or more, got {self.threads}")
        _check(
            self.threads <= thread_limit(),
            f"--encoder-threads must be at most {thread_limit()} (4 per usable core), "
            f"got {self.threads}",
        )


@dataclass(frozen=True)
class AnimationSettings:
    """The render task's animation: particle count and position samples per frame (pure-Python
    cost), glow passes (OpenCV cost)."""

    particles: int = 300
    glow: int = 2
    seed: int = 0
    title: str = "vidpipe"
    samples: int = 1

    def __post_init__(self) -> None:
        _check(
            0 <= self.particles <= MAX_PARTICLES,
            f"--particles must be between 0 and {MAX_PARTICLES}, got {self.particles}",
        )
        _check(
            0 <= self.glow <= MAX_GLOW, f"--glow must be between 0 and {MAX_GLOW}, got {self.glow}"
        )
        _check(
            1 <= self.samples <= MAX_SAMPLES,
            f"--samples must be between 1 and {MAX_SAMPLES}, got {self.samples}",
        )
        _check(self.seed >= 0, f"--seed must be 0 or more, got {self.seed}")


@dataclass(frozen=True)
class StageSpec:
    """A stage to build: a built-in stage's name, `FILE.py:CLASS` or `MODULE:CLASS`, and the
    keyword arguments to build it with (see `pipeline.stages.loader`)."""

    ref: str
    options: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        options = ",".join(f"{key}={value!r}" for key, value in self.options)
        return f"{self.ref}:{options}" if options else self.ref


@dataclass(frozen=True)
class RunOptions:
    """Everything a run needs besides its input: where outputs go and how the work is laid out.

    `workers` sizes frame pools and the number of segments (None: the usable cores).
    Layouts other than `segments` encode each task in pieces of at least `segment_frames`
    frames (0: in one piece), so that `resume` can continue an interrupted run after its last
    finished piece. `ray_address` joins an existing Ray cluster (`ray` layout) instead of
    starting a local instance. `stages` are (task, stage) pairs: each stage is added to the end
    of its task's chain, in the order given. A `layout` ending in `.toml` names a layout file,
    read into `layout_file` when the job is planned (`pipeline.layout_file`). `force`
    overwrites files at the paths a run writes that vidpipe did not write (`pipeline.outdir`).
    A run in which no frame moves for `stall_timeout` seconds fails (0: never; see
    `pipeline.watchdog`).
    """

    out_dir: Path
    layout: str = "processes"
    tasks: tuple[str, ...] = ("compress", "render")
    height: int | None = None
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    animation: AnimationSettings = field(default_factory=AnimationSettings)
    save_every: int = 25
    start_method: StartMethod = StartMethod.SPAWN
    opencv_threads: int | None = None
    workers: int | None = None
    transport: Transport = Transport.SHM
    trace: bool = False
    resume: bool = False
    segment_frames: int = 1500
    ray_address: str | None = None
    stages: tuple[tuple[str, StageSpec], ...] = ()
    layout_file: LayoutFile | None = None
    force: bool = False
    stall_timeout: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))  # accept str paths too
        _check(len(self.tasks) > 0, "--tasks needs at least one task")
        _check(len(set(self.tasks)) == len(self.tasks), "--tasks names a task twice")
        _check(
            self.height is None or 2 <= self.height <= MAX_FRAME_SIDE,
            f"--height must be between 2 and {MAX_FRAME_SIDE}, got {self.height}",
        )
        _check(self.save_every > 0, f"--save-every must be positive, got {self.save_every}")
        _check(
            self.workers is None or self.workers > 0,
            f"--workers must be positive, got {self.workers}",
        )
        if self.layout == "ray":
            most, why = MAX_CLUSTER_WORKERS, "segments on a cluster"
        else:
            most, why = thread_limit(), "4 per usable core: each is a thread or process here"
        _check(
            self.workers is None or self.workers <= most,
            f"--workers must be at most {most} ({why}), got {self.workers}",
        )
        _check(
            self.ray_address is None or self.layout == "ray",
            "--ray-address is for --layout ray",
        )
        _check(
            self.ray_address is None
            or re.fullmatch(r"(ray://)?[^:/]+:\d+", self.ray_address) is not None,
            f"--ray-address must be HOST:PORT, got {self.ray_address!r}",
        )
        unknown = sorted({task for task, _ in self.stages} - set(self.tasks))
        _check(
            not unknown,
            f"--stage: task '{unknown[0] if unknown else ''}' is not run "
            f"(--tasks {','.join(self.tasks)})",
        )
        _check(
            self.segment_frames >= 0,
            f"--segment-frames must be 0 (one piece) or more, got {self.segment_frames}",
        )
        _check(
            self.opencv_threads is None or 0 <= self.opencv_threads <= thread_limit(),
            f"--opencv-threads must be between 0 and {thread_limit()} (4 per usable core), "
            f"got {self.opencv_threads}",
        )
        _check(
            self.stall_timeout >= 0,
            f"--stall-timeout must be 0 (never) or more seconds, got {self.stall_timeout:g}",
        )
