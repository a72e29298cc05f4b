"""Tasks: a named chain of stages between the decoder and an encoder, as data.

The two built-in tasks mirror the teaching note's video-editing job:

* `compress` re-encodes the input, optionally resized to `--height`, keeping its audio;
* `render` composites an animation over every frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from .config import EncoderSettings, RunOptions, StageSpec
from .errors import ConfigError
from .media.probe import MediaInfo
from .stages import Animate, EvenCrop, PixelFormat, Resize, Stage, StreamSpec
from .stages.loader import build_stage

__all__ = ["TASK_BUILDERS", "Task", "plan_tasks"]


@dataclass(frozen=True)
class Task:
    """A named chain of stages, the file it writes, and how it encodes."""

    name: str
    stages: tuple[Stage, ...]
    output: str
    encoder: EncoderSettings
    keep_audio: bool = True
    size_fix: str | None = None

    @property
    def frame_independent(self) -> bool:
        """True when every stage is: frames may then be processed in any order, in pieces."""
        return all(stage.frame_independent for stage in self.stages)

    def decode_format(self, media: MediaInfo) -> PixelFormat:
        """I420 when every stage accepts it (no colour conversion at all), else BGR24."""
        even = media.width % 2 == 0 and media.height % 2 == 0
        if even and all(PixelFormat.YUV420P in stage.accepts for stage in self.stages):
            return PixelFormat.YUV420P
        return PixelFormat.BGR24

    def input_spec(self, media: MediaInfo) -> StreamSpec:
        """The frames the decoder hands to the first stage."""
        return media.spec(self.decode_format(media))

    def output_spec(self, media: MediaInfo) -> StreamSpec:
        """The frames the last stage hands to the encoder."""
        spec = self.input_spec(media)
        for stage in self.stages:
            spec = stage.output_spec(spec)
        return spec


def _compress(options: RunOptions, media: MediaInfo) -> Task:
    resize = options.height is not None and options.height != media.height
    stages: tuple[Stage, ...] = (Resize(options.height),) if resize and options.height else ()
    return Task("compress", stages, "compressed.mp4", options.encoder)


def _render(options: RunOptions, media: MediaInfo) -> Task:
    a = options.animation
    stages = (Animate(particles=a.particles, glow=a.glow, seed=a.seed, title=a.title),)
    return Task("render", stages, "rendered.mp4", options.encoder)


#: Built-in tasks by name.
TASK_BUILDERS: dict[str, Callable[[RunOptions, MediaInfo], Task]] = {
    "compress": _compress,
    "render": _render,
}


def _with_even_size(task: Task, media: MediaInfo) -> Task:
    try:
        spec = task.output_spec(media)
    except Exception as exc:  # a stage's output_spec rejects the frames (its configuration)
        raise ConfigError(f"task '{task.name}': {type(exc).__name__}: {exc}") from exc
    fix = EvenCrop.explain(spec)
    if fix is None:
        return task
    return dataclasses.replace(task, stages=(*task.stages, EvenCrop()), size_fix=fix)


def _with_stages(task: Task, specs: list[StageSpec]) -> Task:
    if not specs:
        return task
    added = tuple(build_stage(spec) for spec in specs)
    return dataclasses.replace(task, stages=(*task.stages, *added))


def plan_tasks(options: RunOptions, media: MediaInfo) -> tuple[Task, ...]:
    """Build the tasks named in `options` for `media`: their built-in stages (unless the layout
    file leaves them out), then the stages `options.stages` adds, then a crop to even sizes
    where needed. Raises `ConfigError` for an unknown task or a stage that cannot be loaded."""
    tasks = []
    for name in options.tasks:
        builder = TASK_BUILDERS.get(name)
        if builder is None:
            known = ", ".join(TASK_BUILDERS)
            raise ConfigError(f"unknown task '{name}' (known: {known})")
        task = builder(options, media)
        if options.layout_file and not options.layout_file.task(name).builtin_stages:
            task = dataclasses.replace(task, stages=())
        added = [spec for task_name, spec in options.stages if task_name == name]
        tasks.append(_with_even_size(_with_stages(task, added), media))
    return tuple(tasks)
