"""The render task's animation: glowing particles, a title and a timecode over each frame.

The cost has two parts on purpose, because they behave differently under the GIL:

* particle positions are computed in pure Python, one particle at a time (cost grows with
  `particles`, and with `samples`: the instants within a frame that each position is averaged
  over, which smooths fast motion without drawing more); this part holds the GIL, so threads
  cannot run it in parallel;
* drawing, the glow (Gaussian blurs, cost grows with `glow`) and blending run in OpenCV, which
  releases the GIL, so threads do run this part in parallel.

The output is a pure function of (frame, index, configuration): frame-independent and
deterministic, so every layout produces the same frames.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from .base import Stage, StreamSpec

if TYPE_CHECKING:  # OpenCV and numpy load with the frames: listings need neither
    import numpy as np

__all__ = ["Animate"]

_Particle = tuple[float, float, float, float, float, float, float, float, int, tuple[int, int, int]]


class Animate(Stage):
    """Composite `particles` glowing particles, a title and a timecode onto each BGR frame."""

    name = "animate"

    def __init__(
        self,
        particles: int = 300,
        glow: int = 2,
        seed: int = 0,
        title: str = "vidpipe",
        samples: int = 1,
    ) -> None:
        for key, value in (("particles", particles), ("glow", glow), ("seed", seed)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{key} must be a whole number, 0 or more, got {value!r}")
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a whole number, 1 or more, got {samples!r}")
        self.particles = particles
        self.glow = glow
        self.seed = seed
        self.title = title
        self.samples = samples

    def setup(self, spec: StreamSpec) -> None:
        self._width, self._height = spec.width, spec.height
        self._seconds_per_frame = 1 / float(spec.fps)
        self._frames_per_second = max(1, round(spec.fps))
        rng = random.Random(self.seed)
        scale = min(spec.width, spec.height)
        self._particles: list[_Particle] = [
            (
                rng.uniform(0, spec.width),
                rng.uniform(0, spec.height),
                rng.uniform(-0.15, 0.15) * scale,
                rng.uniform(-0.15, 0.15) * scale,
                rng.uniform(0.02, 0.12) * scale,
                rng.uniform(0.3, 2.5),
                rng.uniform(0, math.tau),
                rng.uniform(0, math.tau),
                max(1, round(scale * rng.uniform(0.004, 0.012))),
                (rng.randrange(80, 256), rng.randrange(80, 256), rng.randrange(80, 256)),
            )
            for _ in range(self.particles)
        ]
        self._sigma = max(1.0, scale / 80)
        self._font_scale = max(0.4, spec.height / 720)

    def positions(self, index: int) -> list[tuple[int, int]]:
        """Particle centres at frame `index`, each the mean of its position at `samples` instants
        spread over the frame's duration: pure Python, one particle at a time (GIL-bound)."""
        n = self.samples
        times = [(index + s / n) * self._seconds_per_frame for s in range(n)]
        w, h = self._width, self._height
        out = []
        for x0, y0, vx, vy, amp, freq, px, py, _, _ in self._particles:
            x = y = 0.0
            for t in times:
                x += (
                    x0
                    + vx * t
                    + amp * math.sin(freq * t + px)
                    + 0.5 * amp * math.sin(2.3 * freq * t)
                )
                y += (
                    y0
                    + vy * t
                    + amp * math.cos(freq * t + py)
                    + 0.5 * amp * math.cos(1.7 * freq * t)
                )
            out.append((int(x / n % w), int(y / n % h)))
        return out

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        import cv2
        import numpy as np

        layer = np.zeros_like(frame)
        for (x, y), particle in zip(self.positions(index), self._particles, strict=True):
            cv2.circle(layer, (x, y), particle[8], particle[9], -1, cv2.LINE_AA)
        out = cv2.add(frame, layer)
        halo = layer
        for _ in range(self.glow):
            # Each pass blurs the last one again, spreading the light further at the same cost;
            # the sum of the passes looks like a soft bloom.
            halo = cv2.GaussianBlur(halo, (0, 0), self._sigma)
            out = cv2.add(out, halo)
        self._draw_text(out, index)
        return out

    def _draw_text(self, frame: np.ndarray, index: int) -> None:
        import cv2

        fps = self._frames_per_second
        seconds, frame_in_second = divmod(index, fps)
        minutes, seconds = divmod(seconds, 60)
        timecode = f"{minutes // 60:02d}:{minutes % 60:02d}:{seconds:02d}:{frame_in_second:02d}"
        scale, margin = self._font_scale, round(12 * self._font_scale)
        font, thick = cv2.FONT_HERSHEY_SIMPLEX, max(1, round(2 * scale))
        baseline = round(30 * scale)
        for text, origin in (
            (self.title, (margin, margin + baseline)),
            (timecode, (margin, self._height - margin)),
        ):
            cv2.putText(frame, text, origin, font, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
            cv2.putText(frame, text, origin, font, scale, (255, 255, 255), thick, cv2.LINE_AA)
