"""Exercise 1 (solution): a grayscale stage that works in I420 without any colour conversion.

In I420 a frame is its luma plane (the grey picture) followed by two chroma planes; setting
the chroma to 128 (no colour) leaves exactly the grey picture. Because the stage accepts
I420, a task made only of such stages is decoded and encoded in I420: no BGR conversion at all.

Written twice: as a `Stage` subclass (`Grayscale`), and as a plain function (`grayscale`),
which gives the same frames.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.stages import PixelFormat, Stage, StreamSpec


class Grayscale(Stage):
    """Removes the colour: I420 frames keep their luma, BGR frames become grey BGR."""

    name = "grayscale"
    frame_independent = True
    accepts = frozenset({PixelFormat.BGR24, PixelFormat.YUV420P})

    def setup(self, spec: StreamSpec) -> None:
        self._yuv = spec.pix_fmt is PixelFormat.YUV420P
        self._luma_rows = spec.height  # I420: the first `height` rows are the luma plane

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        if self._yuv:
            frame[self._luma_rows :] = 128  # both chroma planes: no colour
            return frame
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        out: np.ndarray = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        return out


def grayscale(frame: np.ndarray, index: int) -> np.ndarray:
    """Removes the colour, as `Grayscale` does: a stage written as a plain function."""
    if frame.ndim == 2:  # I420: height * 3 // 2 rows, the first two thirds are the luma
        frame[frame.shape[0] * 2 // 3 :] = 128
        return frame
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    out: np.ndarray = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    return out


grayscale.accepts = ("bgr24", "yuv420p")  # type: ignore[attr-defined]
