"""Stages as plain Python: a class with `process(frame, index)` and no base class; a function.

    vidpipe run sample_media/car-detection.mp4 --out out \
        --stage compress:examples/stages/plain.py:Negative
    vidpipe run sample_media/car-detection.mp4 --out out \
        --stage compress:examples/stages/plain.py:vflip
    vidpipe check-stage examples/stages/plain.py:vflip
"""

from __future__ import annotations

import numpy as np


class Negative:
    """Any class with process(frame, index): setup and teardown are optional."""

    def __init__(self, mask: int = 255) -> None:
        self.mask = mask  # configuration: a plain attribute, pickled to workers

    def setup(self) -> None:  # may take the frame spec, or nothing
        self._mask = np.uint8(self.mask)

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        return np.bitwise_xor(frame, self._mask)


def vflip(frame: np.ndarray, index: int) -> np.ndarray:
    """A function f(frame, index) that returns the frame."""
    return np.ascontiguousarray(frame[::-1])
