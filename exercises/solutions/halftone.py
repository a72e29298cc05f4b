"""Exercise 8 (solution): a halftone, whose GIL share misleads Amdahl's law.

The frame becomes dots on white, one per block of `block` pixels, each as large as its block is
dark and of its block's colour. OpenCV shrinks the frame (releasing the GIL); a Python loop
visits the blocks (holding it) and asks OpenCV to draw each dot, and every `cv2.circle` call
releases the GIL and takes it back. Measured beside a pure-Python thread, the stage holds the
GIL for only part of its time; yet two threads run it slower than one: each of the thousands
of releases a frame ends with the thread waiting for the other to be made to let the GIL go
(a convoy). `vidpipe predict` measures both and takes the larger.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.stages import Stage, StreamSpec


class Halftone(Stage):
    """Dots on white, one per `block`-pixel square, as large as the square is dark."""

    name = "halftone"
    frame_independent = True

    def __init__(self, block: int = 8) -> None:
        if not isinstance(block, int) or block < 2:
            raise ValueError(f"block must be a whole number, 2 or more, got {block!r}")
        self.block = block

    def setup(self, spec: StreamSpec) -> None:
        self._grid = (max(1, spec.width // self.block), max(1, spec.height // self.block))

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        b = self.block
        small = cv2.resize(frame, self._grid, interpolation=cv2.INTER_AREA)
        darkness = 255 - cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        out = np.full_like(frame, 255)
        for y, (row, colours) in enumerate(zip(darkness.tolist(), small.tolist(), strict=True)):
            for x, (dark, colour) in enumerate(zip(row, colours, strict=True)):
                radius = dark * b // 510  # up to half a block
                if radius:
                    centre = (x * b + b // 2, y * b + b // 2)
                    cv2.circle(out, centre, radius, colour, -1, cv2.LINE_AA)
        return out
