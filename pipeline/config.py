"""Run configuration: frozen dataclasses validated once, when they are built.

Strings are parsed only at the edges (the command line); everything below works with these types.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .layout_file import LayoutFile

__all__ = [
    "PRESETS",
    "AnimationSettings",
    "EncoderSettings",
    "RunOptions",
    "StageSpec",
    "StartMethod",
    "Transport",
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
        _check(self.particles >= 0, f"--particles must be 0 or more, got {self.particles}")
        _check(self.glow >= 0, f"--glow must be 0 or more, got {self.glow}")
        _check(self.samples >= 1, f"--samples must be 1 or more, got {self.samples}")


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
    read into `layout_file` when the job is planned (`pipeline.layout_file`).
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))  # accept str paths too
        _check(len(self.tasks) > 0, "--tasks needs at least one task")
        _check(len(set(self.tasks)) == len(self.tasks), "--tasks names a task twice")
        _check(
            self.height is None or self.height >= 2, f"--height must be 2 or more: {self.height}"
        )
        _check(self.save_every > 0, f"--save-every must be positive, got {self.save_every}")
        _check(
            self.workers is None or self.workers > 0,
            f"--workers must be positive, got {self.workers}",
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
            self.opencv_threads is None or self.opencv_threads >= 0,
            f"--opencv-threads must be 0 or more, got {self.opencv_threads}",
        )
