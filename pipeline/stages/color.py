"""Colour conversions between the decoder's and encoder's I420 and the BGR that OpenCV stages
want. The planner puts them into a task's chain where needed (`pipeline.plan.tasks`), so that frames
travel through pipes, pools and shared memory in I420, half the bytes of BGR, and become BGR
only for the stages that need it. OpenCV converts with SIMD and releases the GIL, so the
conversions run in parallel wherever the stages do (thread pools, process pools, segments),
and cost less than ffmpeg's converters in the decoder and encoder processes.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .base import PixelFormat, Stage, StreamSpec

if TYPE_CHECKING:  # OpenCV and numpy load with the frames: listings need neither
    import numpy as np

__all__ = ["ToBGR", "ToI420"]


class ToBGR(Stage):
    """Convert I420 frames to BGR for the stages after it (BT.601, as ffmpeg does by default)."""

    name = "to-bgr"
    accepts = frozenset({PixelFormat.YUV420P})

    def output_spec(self, spec: StreamSpec) -> StreamSpec:
        return dataclasses.replace(spec, pix_fmt=PixelFormat.BGR24)

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        import cv2

        out: np.ndarray = cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_I420)
        return out


class ToI420(Stage):
    """Convert BGR frames to I420 for the encoder (BT.601, chroma averaged over 2x2 pixels)."""

    name = "to-i420"

    def output_spec(self, spec: StreamSpec) -> StreamSpec:
        return dataclasses.replace(spec, pix_fmt=PixelFormat.YUV420P)

    def setup(self, spec: StreamSpec) -> None:
        # The planner never puts it there; a chain that names it may (`--stage`, check-stage).
        if spec.width % 2 or spec.height % 2:
            raise ValueError(
                f"I420 frames need an even width and height, got {spec.width}x{spec.height}"
            )

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        import cv2

        out: np.ndarray = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
        return out
