"""The stage protocol: one step of work on a frame. These docstrings are the specification.

Lifecycle, in the process and thread where the stage will run:

1. The stage is built with its configuration as plain, picklable attributes (numbers, strings,
   tuples; public names). Until `setup()` it holds nothing else: no open files, threads, locks,
   OpenCV objects or large tables. It may be pickled to a worker process or another machine, or
   copied (`copy.deepcopy`) for each thread of a frame pool, before `setup()`.
2. `output_spec(spec)` says what frames come out for frames of `spec` coming in. It is pure and
   cheap: the pipeline calls it while planning, without `setup()`. Raise `ValueError` there when
   the stage cannot take such frames.
3. `setup(spec)` acquires resources (tables, buffers, models, threads) once, where the stage
   runs, and stores them in attributes whose names start with `_` (they are not configuration:
   `describe()` leaves them out).
4. `process(frame, index)` turns frame number `index` (counted from the start of the video, also
   in a segment) into the output frame. It may modify `frame` in place and return it, or return
   a new array of the output spec's shape. Frames are C-contiguous `numpy.uint8` arrays:
   `(height, width, 3)` for BGR24, `(height * 3 // 2, width)` for I420 (YUV 4:2:0: the Y plane,
   then U and V, each a quarter of Y's size). What it returns must be such a frame, of the spec
   `output_spec` declared: C-contiguous (return `np.ascontiguousarray(view)` for a slice or a
   flip), `uint8`, of that shape. Anything else (another shape or dtype, a view, `None`) fails
   the run with a `StageError` naming the stage and the frame, and so does an exception,
   `SystemExit` included; the original exception is its `__cause__`.
5. `teardown()` releases what `setup()` acquired; it is called once, also when the run fails.

Determinism. `process` must give the same output for the same input frames every time: every
layout has to produce the serial run's frames, and `--resume` combines frames of different runs.
Randomness comes from a seed in the configuration (see `Animate`), never from the clock.

Frame independence. A stage whose output for frame `i` depends only on the frame, `i` and its
configuration sets `frame_independent = True` (the default). Layouts may then run it on several
frames at once, in any order: in a pool of threads, each with its own copy set up in that
thread (`hybrid`), so what the copies share (the module's and the class's state) must be
thread-safe; in several processes with a copy each (`pool`); or on separate segments of the
video (`segments`, `ray`). A stage
that carries state from frame to frame (a running average, a tracker) sets it to False: it is
then run on one frame at a time, in order, by one instance, under every layout, and sees every
frame from the first: `segments` and `ray` make its task in one piece instead of cutting it.

Pixel formats. `accepts` lists the formats `process` takes; the decoder hands frames in I420,
with no colour conversion at all, only when every stage of the task accepts it, and in BGR24
otherwise. A stage returns frames in the format it received.

Which layout suits a stage, and whether it keeps these rules: `vidpipe check-stage`.
"""

from __future__ import annotations

import abc
import enum
import inspect
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # frames are numpy arrays, but the protocol itself needs no numpy
    import numpy as np

__all__ = ["PixelFormat", "Stage", "StreamSpec"]


class PixelFormat(enum.StrEnum):
    """Pixel formats frames travel in; values are ffmpeg's names."""

    BGR24 = "bgr24"
    YUV420P = "yuv420p"


@dataclass(frozen=True)
class StreamSpec:
    """The geometry, rate and pixel format of a stream of frames."""

    width: int
    height: int
    fps: Fraction
    pix_fmt: PixelFormat = PixelFormat.BGR24

    @property
    def shape(self) -> tuple[int, ...]:
        """The numpy shape of one frame."""
        if self.pix_fmt is PixelFormat.YUV420P:
            return (self.height * 3 // 2, self.width)
        return (self.height, self.width, 3)

    @property
    def frame_bytes(self) -> int:
        """Size of one raw frame in bytes."""
        size = 1
        for n in self.shape:
            size *= n
        return size


class Stage(abc.ABC):
    """Base class of stages; subclasses implement `process` and may override the rest."""

    #: Short name used in reports, errors and `vidpipe stages`.
    name: ClassVar[str] = "stage"
    #: True when frame i's output depends only on (frame, i, configuration).
    frame_independent: ClassVar[bool] = True
    #: Pixel formats `process` accepts; the pipeline decodes to I420 only when every stage does.
    accepts: ClassVar[frozenset[PixelFormat]] = frozenset({PixelFormat.BGR24})

    def output_spec(self, spec: StreamSpec) -> StreamSpec:
        """The spec of frames this stage returns for input frames of `spec` (default: the same)."""
        return spec

    def setup(self, spec: StreamSpec) -> None:  # noqa: B027 - optional hook
        """Acquire resources where the stage runs; `spec` describes the frames it will receive."""

    @abc.abstractmethod
    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        """Return the processed frame number `index`."""

    def teardown(self) -> None:  # noqa: B027 - optional hook
        """Release what `setup` acquired. Called once, also after errors."""

    def describe(self) -> str:
        """One line with the stage's name and configuration, for reports and for telling jobs
        apart (`--resume`). By default: the name and the public attributes, which hold the
        configuration until `setup()` (what `setup()` adds is named with a leading `_`)."""
        config = ", ".join(
            f"{key}={value!r}" for key, value in vars(self).items() if not key.startswith("_")
        )
        return f"{self.name}({config})" if config else self.name

    @classmethod
    def summary(cls) -> str:
        """The first line of the class's docstring (`vidpipe stages`)."""
        doc = inspect.cleandoc(cls.__doc__ or "")  # its own, not inherited from Stage
        return doc.splitlines()[0] if doc else ""
