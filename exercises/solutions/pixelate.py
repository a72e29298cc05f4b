"""Exercise 4 (solution): one effect written twice, once holding the GIL and once releasing it.

Both pixelate a frame into blocks of `block` pixels, each block painted with its top-left
pixel, and give the same frames. `PixelatePython` visits the blocks in a Python loop: every
step holds the GIL, so threads take turns and only processes run it in parallel.
`PixelateOpenCV` does the same in two OpenCV calls that release the GIL, so threads run it in
parallel too.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.stages import Stage, StreamSpec


class PixelatePython(Stage):
    """Pixelates into `block`-pixel squares, one block at a time in Python (holds the GIL)."""

    name = "pixelate-python"
    frame_independent = True

    def __init__(self, block: int = 8) -> None:
        if not isinstance(block, int) or block < 1:
            raise ValueError(f"block must be a whole number, 1 or more, got {block!r}")
        self.block = block

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        b = self.block
        height, width = frame.shape[:2]
        for y in range(0, height, b):
            for x in range(0, width, b):
                frame[y : y + b, x : x + b] = frame[y, x]
        return frame


class PixelateOpenCV(Stage):
    """Pixelates into `block`-pixel squares with two OpenCV calls (releases the GIL)."""

    name = "pixelate-opencv"
    frame_independent = True

    def __init__(self, block: int = 8) -> None:
        if not isinstance(block, int) or block < 1:
            raise ValueError(f"block must be a whole number, 1 or more, got {block!r}")
        self.block = block

    def setup(self, spec: StreamSpec) -> None:
        b = self.block
        self._padded = (-(-spec.width // b) * b, -(-spec.height // b) * b)
        self._size = (spec.width, spec.height)

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        corners = frame[:: self.block, :: self.block]  # each block's top-left pixel
        # Nearest-neighbour scaling by a whole factor repeats each pixel into a block; the
        # padded size keeps the factor whole, and the crop drops the padding.
        blocks = cv2.resize(corners, self._padded, interpolation=cv2.INTER_NEAREST)
        width, height = self._size
        return np.ascontiguousarray(blocks[:height, :width])
