"""Tasks: a named chain of stages between the decoder and an encoder, as data.

The two built-in tasks mirror the teaching note's video-editing job:

* `compress` re-encodes the input, optionally resized to `--height`, keeping its audio;
* `render` composites an animation over every frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from ..config.options import RunOptions
from ..config.settings import MAX_FRAME_SIDE, EncoderSettings, StageSpec
from ..errors import ConfigError, InputError, did_you_mean, reraise_interrupt
from ..media.probe import MediaInfo
from ..stages import Animate, EvenCrop, PixelFormat, Resize, Stage, StreamSpec
from ..stages.color import ToBGR, ToI420
from ..stages.loader import build_stage

__all__ = ["TASK_BUILDERS", "Task", "in_order_because", "plan_tasks"]


def in_order_because(stages: tuple[Stage, ...]) -> str | None:
    """Why frames must go through `stages` in order, one at a time: the first stage that
    carries state from frame to frame; None when none does."""
    for stage in stages:
        if not stage.frame_independent:
            return (
                f"stage '{stage.name}' carries state from frame to frame "
                "(frame_independent = False)"
            )
    return None


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

    @property
    def in_order_because(self) -> str | None:
        """Why the task's frames must be processed in order, one at a time; None when they
        need not be."""
        return in_order_because(self.stages)

    def decode_format(self, media: MediaInfo) -> PixelFormat:
        """What the decoder hands over: I420, its native format, when the frame size allows it
        (I420 needs even sizes) and the first stage takes it; else BGR24."""
        first = self.stages[0].accepts if self.stages else {PixelFormat.YUV420P}
        if _even(media.spec()) and PixelFormat.YUV420P in first:
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
    try:
        animate = Animate(
            particles=a.particles, glow=a.glow, seed=a.seed, title=a.title, samples=a.samples
        )
    except ValueError as exc:  # AnimationSettings checks the same: a safety net
        raise ConfigError(f"render: {exc}") from exc
    stages = (animate,)
    return Task("render", stages, "rendered.mp4", options.encoder)


#: Built-in tasks by name.
TASK_BUILDERS: dict[str, Callable[[RunOptions, MediaInfo], Task]] = {
    "compress": _compress,
    "render": _render,
}


def _declared_output(task: Task, media: MediaInfo) -> StreamSpec:
    """The frames the task's stages say they make (`Stage.output_spec`), each stage's answer
    checked: `ConfigError` naming the stage when it raises (it rejects the frames) or returns
    anything but a `StreamSpec`."""
    spec = task.input_spec(media)
    for stage in task.stages:
        try:
            out = stage.output_spec(spec)
        except BaseException as exc:
            reraise_interrupt(exc)
            raise ConfigError(
                f"task '{task.name}': stage '{stage.name}': {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(out, StreamSpec):
            raise ConfigError(
                f"task '{task.name}': stage '{stage.name}': output_spec() returned "
                f"{type(out).__name__}, not a StreamSpec"
            )
        spec = out
    return spec


def _with_even_size(task: Task, media: MediaInfo) -> Task:
    spec = _declared_output(task, media)
    if not (2 <= spec.width <= MAX_FRAME_SIDE and 2 <= spec.height <= MAX_FRAME_SIDE):
        stages = ", ".join(stage.name for stage in task.stages)
        raise ConfigError(
            f"task '{task.name}': its stages ({stages}) make frames of {spec.width}x"
            f"{spec.height}; vidpipe encodes 2x2 to {MAX_FRAME_SIDE}x{MAX_FRAME_SIDE}"
        )
    fix = EvenCrop.explain(spec)
    if fix is None:
        return task
    return dataclasses.replace(task, stages=(*task.stages, EvenCrop()), size_fix=fix)


def _check_frame_size(media: MediaInfo) -> None:
    """Refuse an input whose frames cannot be encoded: under 2x2 (H.264's 4:2:0 needs even
    sizes, and cropping 1 pixel to even leaves none), or over `MAX_FRAME_SIDE` a side."""
    w, h = media.width, media.height
    if w < 2 or h < 2:
        raise InputError(
            f"{media.path}: frames of {w}x{h} are too small to encode (H.264 needs at least 2x2)"
        )
    if w > MAX_FRAME_SIDE or h > MAX_FRAME_SIDE:
        raise InputError(
            f"{media.path}: frames of {w}x{h} are larger than the {MAX_FRAME_SIDE} pixels a "
            "side vidpipe decodes"
        )


def _with_stages(task: Task, specs: list[StageSpec]) -> Task:
    if not specs:
        return task
    added = tuple(build_stage(spec) for spec in specs)
    return dataclasses.replace(task, stages=(*task.stages, *added))


def _even(spec: StreamSpec) -> bool:
    return spec.width % 2 == 0 and spec.height % 2 == 0


def _with_conversions(task: Task, media: MediaInfo) -> Task:
    """Frames stay in I420 from the decoder to the encoder except for the stages that need
    BGR: a `ToBGR` goes before the first of them, a `ToI420` after the last stage (so the
    encoder gets I420 too, and the pipes and pools carry half the bytes). A video of odd size
    is decoded to BGR, as I420 cannot hold it, and cropped even at the end (`EvenCrop`)."""
    decoded = PixelFormat.YUV420P if _even(media.spec()) else PixelFormat.BGR24
    spec = media.spec(decoded)
    stages: list[Stage] = []
    for stage in task.stages:
        if spec.pix_fmt not in stage.accepts and _even(spec):
            convert = ToBGR() if spec.pix_fmt is PixelFormat.YUV420P else ToI420()
            stages.append(convert)
            spec = convert.output_spec(spec)
        stages.append(stage)
        spec = stage.output_spec(spec)
    if spec.pix_fmt is PixelFormat.BGR24 and _even(spec):
        stages.append(ToI420())
    return dataclasses.replace(task, stages=tuple(stages))


def plan_tasks(options: RunOptions, media: MediaInfo) -> tuple[Task, ...]:
    """Build the tasks named in `options` for `media`: their built-in stages (unless the layout
    file leaves them out), then the stages `options.stages` adds, then a crop to even sizes
    where needed, with colour conversions where a stage needs BGR (`_with_conversions`).
    Raises `ConfigError` for an unknown task or a stage that cannot be loaded, and `InputError`
    for frames too small or too large to encode."""
    _check_frame_size(media)
    tasks = []
    for name in options.tasks:
        builder = TASK_BUILDERS.get(name)
        if builder is None:
            known = ", ".join(TASK_BUILDERS)
            close = did_you_mean(name, TASK_BUILDERS)
            raise ConfigError(f"unknown task '{name}'{close} (known: {known})")
        task = builder(options, media)
        if options.layout_file and not options.layout_file.task(name).builtin_stages:
            task = dataclasses.replace(task, stages=())
        added = [spec for task_name, spec in options.stages if task_name == name]
        task = _with_even_size(_with_stages(task, added), media)
        tasks.append(_with_conversions(task, media))
    return tuple(tasks)
