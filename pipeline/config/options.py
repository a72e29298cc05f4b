"""A run's options: where outputs go and how the work is laid out, validated once.

Strings are parsed only at the edges (the command line, layout files); everything below works
with these frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, did_you_mean
from .layout_file import LayoutFile, is_layout_file, read_layout_file
from .settings import (
    MAX_CLUSTER_WORKERS,
    MAX_FRAME_SIDE,
    AnimationSettings,
    EncoderSettings,
    StageSpec,
    StartMethod,
    Transport,
    check,
    thread_limit,
)

__all__ = ["RunOptions", "apply_layout_file"]


@dataclass(frozen=True)
class RunOptions:
    """Everything a run needs besides its input: where outputs go and how the work is laid out.

    `workers` sizes frame pools and the number of segments (None: the usable cores).
    Layouts other than `segments` encode each task in pieces of at least `segment_frames`
    frames (0: in one piece), so that `resume` can continue an interrupted run after its last
    finished piece. `ray_address` joins an existing Ray cluster (`ray` layout) instead of
    starting a local instance. `stages` are (task, stage) pairs: each stage is added to the end
    of its task's chain, in the order given. A `layout` ending in `.toml` names a layout file,
    read into `layout_file` when the job is planned (`pipeline.config.layout_file`). `force`
    overwrites files at the paths a run writes that vidpipe did not write (`pipeline.plan.outdir`).
    A run in which no frame moves for `stall_timeout` seconds fails (0: never; see
    `pipeline.engine.watchdog`).
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
        check(len(self.tasks) > 0, "--tasks needs at least one task")
        check(len(set(self.tasks)) == len(self.tasks), "--tasks names a task twice")
        check(
            self.height is None or 2 <= self.height <= MAX_FRAME_SIDE,
            f"--height must be between 2 and {MAX_FRAME_SIDE}, got {self.height}",
        )
        check(self.save_every > 0, f"--save-every must be positive, got {self.save_every}")
        check(
            self.workers is None or self.workers > 0,
            f"--workers must be positive, got {self.workers}",
        )
        if self.layout == "ray":
            most, why = MAX_CLUSTER_WORKERS, "segments on a cluster"
        else:
            most, why = thread_limit(), "4 per usable core: each is a thread or process here"
        check(
            self.workers is None or self.workers <= most,
            f"--workers must be at most {most} ({why}), got {self.workers}",
        )
        check(
            self.ray_address is None or self.layout == "ray",
            "--ray-address is for --layout ray",
        )
        check(
            self.ray_address is None
            or re.fullmatch(r"(ray://)?[^:/]+:\d+", self.ray_address) is not None,
            f"--ray-address must be HOST:PORT, got {self.ray_address!r}",
        )
        unknown = sorted({task for task, _ in self.stages} - set(self.tasks))
        if unknown:
            raise ConfigError(f"--stage: task '{unknown[0]}' {_not_run(unknown[0], self.tasks)}")
        check(
            self.segment_frames >= 0,
            f"--segment-frames must be 0 (one piece) or more, got {self.segment_frames}",
        )
        check(
            self.opencv_threads is None or 0 <= self.opencv_threads <= thread_limit(),
            f"--opencv-threads must be between 0 and {thread_limit()} (4 per usable core), "
            f"got {self.opencv_threads}",
        )
        check(
            self.stall_timeout >= 0,
            f"--stall-timeout must be 0 (never) or more seconds, got {self.stall_timeout:g}",
        )


def apply_layout_file(options: RunOptions) -> RunOptions:
    """`options` with the layout file that `options.layout` names read into it: its start
    method, and its stages, which come before those of `--stage`. Unchanged for a registered
    layout."""
    if not is_layout_file(options.layout) or options.layout_file is not None:
        return options
    layout = read_layout_file(options.layout)
    unknown = sorted({task for task, _ in layout.per_task} - set(options.tasks))
    if unknown:
        raise ConfigError(
            f"layout file {layout.path}: [task.{unknown[0]}] " + _not_run(unknown[0], options.tasks)
        )
    stages = tuple((task, spec) for task, plan in layout.per_task for spec in plan.stages)
    return dataclasses.replace(
        options,
        layout_file=layout,
        start_method=layout.start_method or options.start_method,
        stages=(*stages, *options.stages),
    )


def _not_run(task: str, tasks: tuple[str, ...]) -> str:
    """What is wrong with `task`, named by `--stage` or a layout file but not among the
    `tasks` run, with the one of them it may have meant."""
    return f"is not run{did_you_mean(task, tasks)} (--tasks {','.join(tasks)})"
