"""Exercise 3 (solution): a motion trail, a stage that carries state from frame to frame.

Each output frame is the input blended with the previous output, so frame i depends on every
frame before it: the stage declares `frame_independent = False`. Every layout then runs it on
one instance, frame after frame, and its task is encoded in one piece; frame pools and
segments cannot split it, and the output is still the serial run's.
"""

from __future__ import annotations

import numpy as np

from pipeline.stages import Stage, StreamSpec


class Trail(Stage):
    """Leaves a fading trail: each frame is blended with the previous output by `decay`."""

    name = "trail"
    frame_independent = False

    def __init__(self, decay: float = 0.6) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be at least 0 and below 1, got {decay}")
        self.decay = decay

    def setup(self, spec: StreamSpec) -> None:
        self._weight = round(self.decay * 256)
        self._previous: np.ndarray | None = None

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        if self._previous is not None:
            mixed = frame.astype(np.uint16) * (256 - self._weight)
            mixed += self._previous.astype(np.uint16) * self._weight
            frame = (mixed >> 8).astype(np.uint8)
        self._previous = frame.copy()
        return frame
