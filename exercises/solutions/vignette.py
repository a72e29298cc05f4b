"""Exercise 2 (solution): a vignette whose mask is built in setup(), where the stage runs.

The mask depends on the frame size, which only `setup(spec)` knows, and it is a large array:
built in `__init__`, it would be pickled to every worker; built in `setup()`, each worker makes
its own once. `strength` is the only configuration.
"""

from __future__ import annotations

import numpy as np

from pipeline.stages import Stage, StreamSpec


class Vignette(Stage):
    """Darkens the corners: brightness falls to (1 - strength) at the far corners."""

    name = "vignette"
    frame_independent = True

    def __init__(self, strength: float = 0.6) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be between 0 and 1, got {strength}")
        self.strength = strength

    def setup(self, spec: StreamSpec) -> None:
        y = np.linspace(-1.0, 1.0, spec.height, dtype=np.float32)[:, None]
        x = np.linspace(-1.0, 1.0, spec.width, dtype=np.float32)[None, :]
        distance = np.sqrt((x * x + y * y) / 2.0)  # 0 at the centre, 1 at the corners
        mask = 1.0 - self.strength * distance**2
        # Fixed point, so that the per-frame work is integer arithmetic, exact everywhere.
        self._mask = np.round(mask * 256).astype(np.uint16)[:, :, None]

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        out = (frame.astype(np.uint16) * self._mask) >> 8
        return out.astype(np.uint8)
