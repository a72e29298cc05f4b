"""An example stage in a file of its own: a sepia tone, for `--stage TASK:FILE.py:CLASS`.

    vidpipe run sample_media/car-detection.mp4 --out out \
        --stage compress:examples/stages/sepia.py:Sepia:strength=0.8

The file is self-contained (it imports installed packages only): vidpipe sends its source to
worker processes and to Ray's nodes, which may not see the file.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.stages import Stage, StreamSpec

# The classic sepia matrix, for BGR pixels (OpenCV's channel order): rows give the output's
# blue, green and red from the input's blue, green and red.
SEPIA_BGR = np.array(
    [
        [0.131, 0.534, 0.272],
        [0.168, 0.686, 0.349],
        [0.189, 0.769, 0.393],
    ]
)


class Sepia(Stage):
    """Sepia tone, blended with the original frame by `strength` (0: none, 1: full)."""

    name = "sepia"
    frame_independent = True  # frame i's output depends only on frame i: any layout may run it

    def __init__(self, strength: float = 1.0) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be between 0 and 1, got {strength}")
        self.strength = strength  # configuration: a plain attribute, pickled to workers

    def setup(self, spec: StreamSpec) -> None:
        # Built where the stage runs, after it has been copied there; names starting with `_`
        # are not configuration.
        self._matrix = (1 - self.strength) * np.eye(3) + self.strength * SEPIA_BGR

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        # cv2.transform releases the GIL and saturates to 0..255: threads run it in parallel.
        out: np.ndarray = cv2.transform(frame, self._matrix)
        return out
