"""Exercise 5 (solution): a newest-wins background save, the shape of tqdm's `MonoWorker`.

Every `every` frames the stage hands a copy of the frame to a saver thread through a mailbox
of one slot: when the saver is still busy, a newer frame replaces the one waiting, so the hot
loop never waits for the disk and the preview on disk is always among the newest frames. The
file is replaced atomically (written beside it, then renamed), so a reader never sees half a
JPEG. `teardown()` saves the newest frame, stops the thread, and raises the saver's error if
it had one: a failed save is never only printed.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from pipeline.plan.outdir import atomic_write_bytes
from pipeline.stages import Stage, StreamSpec


class LatestPreview(Stage):
    """Keeps `path` a JPEG of the newest frame, saved by a background thread, newest wins."""

    name = "latest-preview"
    # One instance must see the frames in order, or "newest" would mean nothing; the preview
    # file is also one file, which instances in several workers would fight over.
    frame_independent = False

    def __init__(self, path: str = "preview.jpg", every: int = 5) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a whole number, 1 or more, got {every!r}")
        self.path = path
        self.every = every

    def setup(self, spec: StreamSpec) -> None:
        self._slot: np.ndarray | None = None  # the mailbox: the newest frame not yet saved
        self._wake = threading.Condition()
        self._closing = False
        self._error: BaseException | None = None
        self.saved = 0  # how many previews were written (what the exercise's test counts)
        self._thread = threading.Thread(target=self._run, name="preview-saver", daemon=True)
        self._thread.start()

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        if self._error is not None:
            raise RuntimeError(f"saving {self.path} failed") from self._error
        if index % self.every == 0:
            with self._wake:
                self._slot = frame.copy()  # replaces a frame still waiting: newest wins
                self._wake.notify()
        return frame

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._slot is None and not self._closing:
                    self._wake.wait()
                frame, self._slot = self._slot, None
            if frame is None:
                return  # closing, and nothing left to save
            try:
                self._save(frame)
            except BaseException as exc:
                self._error = exc
                return

    def _save(self, frame: np.ndarray) -> None:
        ok, jpeg = cv2.imencode(".jpg", frame)
        if not ok:
            raise ValueError("JPEG encoding failed")
        # Written beside the file, then renamed: readers see the old preview or the new one.
        atomic_write_bytes(Path(self.path), jpeg.tobytes())
        self.saved += 1

    def teardown(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"saving {self.path} failed") from self._error
