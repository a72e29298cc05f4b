"""A starting point for the exercises: copy this file, rename the class, fill in `process`.

As it is, the stage passes frames through unchanged, and keeps every rule of the protocol
(`pipeline/stages/base.py`), so you can try the tools on it straight away:

    vidpipe check-stage exercises/template_stage.py:MyStage
    vidpipe run sample_media/car-detection.mp4 --out out \
        --stage compress:exercises/template_stage.py:MyStage

The base class is optional: a plain class with `process(frame, index)` (drop `Stage` below;
`setup`, `teardown` and the attributes may stay or go), or a plain function, is a stage too:

    def my_stage(frame: np.ndarray, index: int) -> np.ndarray:
        return frame

(`--stage compress:mine/my_stage.py:my_stage`; docs/stages.md, "Plain Python").
"""

from __future__ import annotations

import numpy as np

from pipeline.stages import PixelFormat, Stage, StreamSpec


class MyStage(Stage):
    """Passes frames through unchanged (replace this line: `vidpipe stages` style summary)."""

    name = "my-stage"  # the name in reports and error messages
    frame_independent = True  # frame i's output depends only on frame i, i and the options
    accepts = frozenset({PixelFormat.BGR24})  # add PixelFormat.YUV420P if you handle I420

    def __init__(self, amount: float = 1.0) -> None:
        # Options arrive as keyword arguments (`:amount=0.5`). Check them here, keep them as
        # plain attributes: the stage is pickled to workers before setup().
        if amount < 0:
            raise ValueError(f"amount must be 0 or more, got {amount}")
        self.amount = amount

    def setup(self, spec: StreamSpec) -> None:
        # Runs where the stage works, once: build tables, buffers, models here, in attributes
        # whose names start with "_". `spec` gives the frames' width, height, rate and format.
        self._shape = spec.shape

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        # `frame` is a uint8 array of shape self._shape; `index` counts from the video's start.
        # Return it (changed in place) or a new array of the same shape.
        return frame

    def teardown(self) -> None:
        # Release what setup() acquired (threads, files). Called also when the run fails.
        pass
