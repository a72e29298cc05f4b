"""The stage protocol: one step of work on a frame.

Lifecycle, in the process and thread where the stage will run:

1. The stage is built with its configuration as plain, picklable attributes. It may be copied to
   another process (pickled) or shared by threads before `setup()`, so it holds no resources yet.
2. `output_spec(spec)` says what frames come out for frames of `spec` coming in. It is pure: the
   pipeline calls it wherever it plans the chain, without `setup()`.
3. `setup(spec)` acquires resources (tables, buffers, models) once, where the stage runs.
4. `process(frame, index)` turns frame number `index` into the output frame. It may modify `frame`
   in place and return it, or return a new array of the output shape. Frames are `numpy.uint8`
   arrays: `(height, width, 3)` for BGR24, `(height * 3 // 2, width)` for I420 (YUV 4:2:0).
5. `teardown()` releases what `setup()` acquired; it is called also when the run fails.

A stage whose output for frame `i` depends only on the frame, `i` and its configuration sets
`frame_independent = True`: layouts may then run it on several frames at once, in any order, in
other threads or processes. Such a stage must also be deterministic. A stage that keeps state from
frame to frame sets it to False and is only run in order, on one frame at a time.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

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
        """One line with the stage's name and configuration, for reports."""
        return self.name
