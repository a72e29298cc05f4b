"""`vidpipe check-stage`: does a stage keep the protocol's rules, and which layout suits it?

The stage runs on generated frames, in this process, and is checked for what the layouts rely
on (see `pipeline.stages.base`):

* picklable: process layouts pickle it to their workers; its copy must give the same frames;
* deterministic: two fresh instances give the same frames;
* for a stage that declares itself frame-independent: the same frames when processed in
  reverse order, and when four threads share one instance (as `hybrid` does);
* whether it releases the GIL: the speedup of 2 threads over 1 on the same work, each thread
  with its own instance, OpenCV pinned to one thread so the only parallelism is ours (the
  fastest of 7 interleaved runs of each; needs 2 usable cores).

The recommendation follows: `threads` when the stage releases the GIL (threads run it in
parallel without copying frames), `processes` when it holds the GIL (only processes run it in
parallel), `either` when the measurement cannot tell.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from ..config.settings import StageSpec, usable_cores
from ..errors import PipelineError, reraise_interrupt
from ..stages.base import PixelFormat, Stage, StreamSpec
from ..stages.loader import build_stage

__all__ = ["GIL_FREE_SPEEDUP", "GIL_HELD_SPEEDUP", "StageReport", "check_stage", "generated_frames"]

#: 2 threads at least this much faster than 1: the stage releases the GIL. Not 2: on a shared
#: machine whose two CPUs may be hyperthreads of one core, OpenCV blurs measured 1.37x to 1.86x
#: while stages that hold the GIL measure 0.8x to 1.0x.
GIL_FREE_SPEEDUP = 1.25
#: Below this: it holds the GIL. In between, it releases it for part of its work.
GIL_HELD_SPEEDUP = 1.1
#: Threads sharing one instance in the thread-safety check.
SHARING_THREADS = 4
#: Seconds of work a timing run aims at (one thread), and rounds of it (the fastest counts).
TIMING_SECONDS = 0.3
TIMING_ROUNDS = 7


@dataclass
class StageReport:
    """What `check_stage` found. `problems` lists the rules broken; empty when the stage is safe
    for the layouts it claims."""

    stage: str
    spec: str
    frames: int
    size: str
    pix_fmt: str
    frame_independent: bool
    picklable: bool
    deterministic: bool
    order_independent: bool | None  # None: not frame-independent, not checked
    thread_safe: bool | None
    speedup_2_threads: float | None  # None: fewer than 2 usable cores
    releases_gil: bool | None
    recommendation: str
    reason: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


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


def _digest(frame: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frame).data).hexdigest()


def _digests(
    stage: Stage, spec: StreamSpec, frames: list[np.ndarray], order: list[int]
) -> dict[int, str]:
    """Set `stage` up, run it on `frames` in `order` (copies: it may write in place)."""
    stage.setup(spec)
    try:
        return {i: _digest(stage.process(frames[i].copy(), i)) for i in order}
    finally:
        stage.teardown()


def _shared_by_threads(
    stage: Stage, spec: StreamSpec, frames: list[np.ndarray]
) -> list[tuple[int, str]]:
    """Every frame three times, in a shuffled order, by threads sharing one instance."""
    order = [i for _ in range(3) for i in range(len(frames))]
    np.random.default_rng(1).shuffle(order)
    stage.setup(spec)
    try:

        def one(i: int) -> tuple[int, str]:
            return i, _digest(stage.process(frames[i].copy(), i))

        with ThreadPoolExecutor(SHARING_THREADS) as pool:
            return list(pool.map(one, order))
    finally:
        stage.teardown()


def _timed(works: list[Callable[[], None]]) -> float:
    """Seconds until every one of `works`, each in a thread of its own, has finished."""
    barrier = threading.Barrier(len(works) + 1)
    errors: list[BaseException] = []

    def start(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            barrier.wait()
            try:
                work()
            except BaseException as exc:  # raised in the caller's thread below
                errors.append(exc)

        return run

    threads = [threading.Thread(target=start(work)) for work in works]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def _speedup(fresh: Callable[[], Stage], spec: StreamSpec, frames: list[np.ndarray]) -> float:
    """How much faster 2 threads do the work of 1, each with an instance of its own."""
    stages = [fresh(), fresh()]
    for stage in stages:
        stage.setup(spec)

    def work(stage: Stage, count: int) -> Callable[[], None]:
        def run() -> None:
            for k in range(count):
                i = k % len(frames)
                stage.process(frames[i].copy(), i)

        return run

    try:
        # Warm up first: the first passes pay for page faults and lazy set-up (the allocator
        # settles after a few frames), which would pass for a speedup.
        _timed([work(stage, 2 * len(frames)) for stage in stages])
        per_frame = _timed([work(stages[0], len(frames))]) / len(frames)
        calls = 2 * max(2, min(2000, round(TIMING_SECONDS / max(per_frame, 1e-6) / 2)))
        ones, twos = [], []
        for _ in range(TIMING_ROUNDS):  # interleaved: one thread, then two, then again
            ones.append(_timed([work(stages[0], calls)]))
            twos.append(_timed([work(stage, calls // 2) for stage in stages]))
        # The fastest of each: on a shared machine, other work only ever adds time, so the
        # minimum is the closest to the stage's own cost (as `timeit` reasons).
        return round(min(ones) / min(twos), 2)
    finally:
        for stage in stages:
            stage.teardown()


def check_stage(
    spec: StageSpec, *, width: int = 320, height: int = 240, count: int = 24
) -> StageReport:
    """Check the stage `spec` names on `count` generated frames of `width` x `height`.

    Raises `ConfigError` when the stage cannot be built, and `PipelineError` when it raises on
    the generated frames (its original error as `__cause__`).
    """
    stage = build_stage(spec)
    try:
        return _check(stage, spec, width, height, count)
    except (PipelineError, KeyboardInterrupt):
        raise
    except BaseException as exc:
        reraise_interrupt(exc)
        raise PipelineError(
            f"stage {stage.name} failed on generated {width}x{height} frames: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _picklable(
    stage: Stage, stream: StreamSpec, frames: list[np.ndarray], reference: dict[int, str]
) -> str | None:
    """What is wrong with `stage` travelling to a worker process pickled, or None."""
    try:
        copied = pickle.loads(pickle.dumps(stage))
    except Exception as exc:
        return (
            f"not picklable before setup() ({type(exc).__name__}: {exc}): process layouts "
            "cannot send it to their workers; keep only configuration until setup()"
        )
    if _digests(copied, stream, frames, list(range(len(frames)))) != reference:
        return "a pickled copy gives other frames: configuration is lost"
    return None


def _frame_parallel(
    spec: StageSpec, stream: StreamSpec, frames: list[np.ndarray], reference: dict[int, str]
) -> tuple[bool, bool, list[str]]:
    """(gives the same frames in any order, under threads sharing one instance; problems)."""
    problems = []
    backwards = _digests(build_stage(spec), stream, frames, list(range(len(frames)))[::-1])
    order_independent = backwards == reference
    if not order_independent:
        problems.append(
            "claims frame_independent but gives other frames in another order: set "
            "frame_independent = False, or drop the state carried between frames"
        )
    shared = _shared_by_threads(build_stage(spec), stream, frames)
    thread_safe = all(reference[i] == digest for i, digest in shared)
    if not thread_safe:
        problems.append(
            f"claims frame_independent but {SHARING_THREADS} threads sharing one "
            "instance give other frames (hybrid does that): keep per-frame data in "
            "local variables, not in self"
        )
    return order_independent, thread_safe, problems


def _check(stage: Stage, spec: StageSpec, width: int, height: int, count: int) -> StageReport:
    pix_fmt = PixelFormat.BGR24 if PixelFormat.BGR24 in stage.accepts else PixelFormat.YUV420P
    stream = StreamSpec(width, height, Fraction(25), pix_fmt)
    frames = generated_frames(width, height, count, pix_fmt)
    in_order = list(range(count))
    problems: list[str] = []
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        reference = _digests(build_stage(spec), stream, frames, in_order)
        unpicklable = _picklable(stage, stream, frames, reference)
        picklable = unpicklable is None or not unpicklable.startswith("not picklable")
        problems += [unpicklable] if unpicklable else []
        deterministic = _digests(build_stage(spec), stream, frames, in_order) == reference
        if not deterministic:
            problems.append(
                "not deterministic: two runs give different frames (seed randomness from "
                "the configuration, never from the clock)"
            )
        order_independent = thread_safe = None
        if stage.frame_independent:
            order_independent, thread_safe, found = _frame_parallel(spec, stream, frames, reference)
            problems += found
        speedup = None
        if usable_cores() >= 2:
            speedup = _speedup(lambda: build_stage(spec), stream, frames)
    finally:
        cv2.setNumThreads(opencv_threads)

    recommendation, reason, releases = _recommend(speedup, picklable, stage.frame_independent)
    return StageReport(
        stage=stage.describe(),
        spec=str(spec),
        frames=count,
        size=f"{width}x{height}",
        pix_fmt=pix_fmt.value,
        frame_independent=stage.frame_independent,
        picklable=picklable,
        deterministic=deterministic,
        order_independent=order_independent,
        thread_safe=thread_safe,
        speedup_2_threads=speedup,
        releases_gil=releases,
        recommendation=recommendation,
        reason=reason,
        problems=problems,
    )


def _recommend(
    speedup: float | None, picklable: bool, frame_independent: bool
) -> tuple[str, str, bool | None]:
    """(recommendation, why, releases the GIL) from the measured speedup.

    A frame-independent stage can be spread over a frame pool (`hybrid` threads, `pool`
    processes) or segments; one that carries state runs in order under every layout, so only
    where its task runs (a thread or a process of its own, beside the other task) matters.
    """
    if speedup is None:
        return "either", "one usable core: whether it releases the GIL cannot be measured", None
    where = (
        ("a thread pool (hybrid)", "a process pool or segments (pool, segments)")
        if frame_independent
        else ("its task in a thread (threads)", "its task in a process (processes)")
    )
    if speedup >= GIL_FREE_SPEEDUP:
        return (
            "threads",
            f"it releases the GIL ({speedup:.2f}x with 2 threads): threads run it in parallel "
            f"without copying frames; use {where[0]}",
            True,
        )
    if speedup < GIL_HELD_SPEEDUP:
        if not picklable:
            return (
                "threads",
                "it holds the GIL, but it is not picklable: only threads run it",
                False,
            )
        return (
            "processes",
            f"it holds the GIL ({speedup:.2f}x with 2 threads): only processes run it in "
            f"parallel; use {where[1]}",
            False,
        )
    return (
        "either",
        f"it releases the GIL for part of its work ({speedup:.2f}x with 2 threads): "
        "compare threads and processes on your input with `vidpipe compare`",
        None,
    )
