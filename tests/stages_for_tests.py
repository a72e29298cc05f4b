"""Stages that misbehave on purpose; importable by worker processes under every start method."""

from __future__ import annotations

import os
import signal

import numpy as np

from pipeline.stages import Stage


class FailAt(Stage):
    """Raises ValueError on frame `at`."""

    name = "fail-at"

    def __init__(self, at: int) -> None:
        self.at = at

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        if index == self.at:
            raise ValueError(f"bad frame {index}")
        return frame


class DieAt(Stage):
    """Kills its own process with SIGKILL on frame `at` (a worker dying mid-run)."""

    name = "die-at"

    def __init__(self, at: int) -> None:
        self.at = at

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        if index == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
        return frame


class Invert(Stage):
    """Inverts BGR frames (an ordinary user stage)."""

    name = "invert"

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        return np.bitwise_not(frame)


class BurnCpu(Stage):
    """Spends `seconds` of CPU time in pure Python on every frame (holds the GIL)."""

    name = "burn-cpu"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        import time

        end = time.thread_time() + self.seconds
        while time.thread_time() < end:
            pass
        return frame


class Trail(Stage):
    """Blends each frame with the previous output: state carried from frame to frame."""

    name = "trail"
    frame_independent = False

    def setup(self, spec: object) -> None:
        self._previous: np.ndarray | None = None

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        if self._previous is not None:
            frame = (frame // 2 + self._previous // 2).astype(np.uint8)
        self._previous = frame.copy()
        return frame
