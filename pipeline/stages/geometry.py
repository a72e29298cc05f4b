"""Stages that change frame geometry: resize to a height, crop to even dimensions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Stage, StreamSpec

if TYPE_CHECKING:  # OpenCV and numpy load with the frames: listings need neither
    import numpy as np

__all__ = ["EvenCrop", "Resize"]


class Resize(Stage):
    """Resize frames to `height` pixels, keeping the aspect ratio (width rounded to even).

    Uses area interpolation when shrinking and bicubic when enlarging; OpenCV releases the GIL.
    """

    name = "resize"

    def __init__(self, height: int) -> None:
        if not isinstance(height, int) or height < 2:
            raise ValueError(f"height must be a whole number of pixels, 2 or more, got {height!r}")
        self.height = height

    def output_spec(self, spec: StreamSpec) -> StreamSpec:
        width = max(2, round(spec.width * self.height / spec.height / 2) * 2)
        return StreamSpec(width, self.height, spec.fps, spec.pix_fmt)

    def setup(self, spec: StreamSpec) -> None:
        out = self.output_spec(spec)
        self._size = (out.width, out.height)
        shrinking = out.height < spec.height
        import cv2

        self._interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        import cv2

        return cv2.resize(frame, self._size, interpolation=self._interpolation)

    def describe(self) -> str:
        return f"resize(height={self.height})"


class EvenCrop(Stage):
    """Drop the last column and/or row so both dimensions are even (libx264 4:2:0 needs that)."""

    name = "even-crop"

    def output_spec(self, spec: StreamSpec) -> StreamSpec:
        return StreamSpec(spec.width - spec.width % 2, spec.height - spec.height % 2, spec.fps)

    def setup(self, spec: StreamSpec) -> None:
        out = self.output_spec(spec)
        self._size = (out.width, out.height)

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        import numpy as np

        width, height = self._size
        # A contiguous copy: the encoder and the digest read the frame's bytes as one block.
        return np.ascontiguousarray(frame[:height, :width])

    @staticmethod
    def explain(spec: StreamSpec) -> str | None:
        """What the crop does to frames of `spec`, or None when they are already even."""
        if spec.width % 2 == 0 and spec.height % 2 == 0:
            return None
        out = EvenCrop().output_spec(spec)
        return (
            f"cropped {spec.width}x{spec.height} to {out.width}x{out.height} "
            "(libx264 4:2:0 needs even dimensions)"
        )
