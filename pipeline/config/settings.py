"""The settings of a run's parts, and the limits options are checked against.

Frozen dataclasses and enums, validated once, when they are built: the encoder's settings, the
animation's, how worker processes start, how frames travel, a stage reference. Strings are
parsed only at the edges (the command line, TOML files).
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = [
    "MAX_FRAME_SIDE",
    "PRESETS",
    "AnimationSettings",
    "EncoderSettings",
    "StageSpec",
    "StartMethod",
    "Transport",
    "check",
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


def check(condition: bool, message: str) -> None:
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
        check(0 <= self.crf <= 51, f"--crf must be between 0 and 51, got {self.crf}")
        check(self.preset in PRESETS, f"--preset must be one of {', '.join(PRESETS)}")
        check(self.threads >= 0, f"--encoder-threads must be 0 (auto) or more, got {self.threads}")
        check(
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
        check(
            0 <= self.particles <= MAX_PARTICLES,
            f"--particles must be between 0 and {MAX_PARTICLES}, got {self.particles}",
        )
        check(
            0 <= self.glow <= MAX_GLOW, f"--glow must be between 0 and {MAX_GLOW}, got {self.glow}"
        )
        check(
            1 <= self.samples <= MAX_SAMPLES,
            f"--samples must be between 1 and {MAX_SAMPLES}, got {self.samples}",
        )
        check(self.seed >= 0, f"--seed must be 0 or more, got {self.seed}")


@dataclass(frozen=True)
class StageSpec:
    """A stage to build: a built-in stage's name, `FILE.py:CLASS` or `MODULE:CLASS`, and the
    keyword arguments to build it with (see `pipeline.stages.loader`)."""

    ref: str
    options: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        options = ",".join(f"{key}={value!r}" for key, value in self.options)
        return f"{self.ref}:{options}" if options else self.ref
