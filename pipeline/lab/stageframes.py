"""The frames `vidpipe check-stage` runs a stage on, and the digests of what it returns: in
order, in another order, and from threads that each run their own copy of the stage."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from ..engine.chain import copy_stages, mismatch
from ..errors import PipelineError
from ..stages.base import PixelFormat, Stage, StreamSpec

__all__ = ["SHARING_THREADS", "by_threads", "checked", "digest", "digests", "generated_frames"]

#: Threads, each with its own copy of the stage, in the thread-safety check.
SHARING_THREADS = 4


def generated_frames(width: int, height: int, count: int, pix_fmt: PixelFormat) -> list[np.ndarray]:
    """`count` deterministic frames with edges, gradients and noise, in `pix_fmt`."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, width, dtype=np.float32)
    frames = []
    for i in range(count):
        bgr = np.empty((height, width, 3), np.uint8)
        bgr[..., 0] = ((ramp + 7 * i) % 256).astype(np.uint8)
        bgr[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
        bgr[..., 2] = rng.integers(0, 256, (height, width), dtype=np.uint8)
        cv2.rectangle(bgr, (i * 5 % width, height // 4), (width // 2, height // 2), (0, 0, 0), -1)
        if pix_fmt is PixelFormat.YUV420P:
            frames.append(np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)))
        else:
            frames.append(bgr)
    return frames


def digest(frame: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frame).data).hexdigest()


def checked(stage: Stage, spec: StreamSpec, frame: np.ndarray, index: int) -> str:
    """The digest of what `stage` returns for `frame`; a `PipelineError` when a run would
    refuse it (not a frame of the stage's output spec: `None`, another dtype or shape)."""
    out = stage.process(frame.copy(), index)  # a copy: it may write in place
    wrong = mismatch(out, stage.output_spec(spec))
    if wrong is not None:
        raise PipelineError(
            f"stage {stage.name} {wrong}, on generated {spec.pix_fmt.value} frame {index}; "
            "a run fails on such a frame"
        )
    return digest(out)


def digests(
    stage: Stage, spec: StreamSpec, frames: list[np.ndarray], order: list[int]
) -> dict[int, str]:
    """Set `stage` up, run it on `frames` in `order`."""
    stage.setup(spec)
    try:
        return {i: checked(stage, spec, frames[i], i) for i in order}
    finally:
        stage.teardown()


def by_threads(stage: Stage, spec: StreamSpec, frames: list[np.ndarray]) -> list[tuple[int, str]]:
    """Every frame three times, in a shuffled order, by threads that each run their own copy
    of `stage`, copied and set up as a frame pool's threads do (`hybrid`,
    `pipeline.engine.chain.copy_stages`): what they share is what its module and class hold.
    A `StageError` when the stage cannot be copied."""
    order = [i for _ in range(3) for i in range(len(frames))]
    np.random.default_rng(1).shuffle(order)
    spare = [copy_stages("check-stage", (stage,))[0] for _ in range(SHARING_THREADS)]
    mine = threading.local()
    copies: list[Stage] = []
    lock = threading.Lock()

    def one(i: int) -> tuple[int, str]:
        if not hasattr(mine, "stage"):
            with lock:
                mine.stage = spare.pop()
            mine.stage.setup(spec)
            with lock:
                copies.append(mine.stage)
        return i, checked(mine.stage, spec, frames[i], i)

    try:
        with ThreadPoolExecutor(SHARING_THREADS) as pool:
            return list(pool.map(one, order))
    finally:
        for copied in copies:
            copied.teardown()
