"""`vidpipe check-stage`: does a stage keep the protocol's rules, and which layout suits it?

The stage runs on generated frames, in this process, and is checked for what the layouts rely
on (see `pipeline.stages.base`):

* picklable: process layouts pickle it to their workers; its copy must give the same frames;
* deterministic: two fresh instances give the same frames;
* for a stage that declares itself frame-independent: the same frames when processed in
  reverse order, and when four threads share one instance (as `hybrid` does);
* whether it releases the GIL, measured two ways (`pipeline.lab.gilmeter`): the share of its
  CPU time during which it holds the GIL, beside a thread of pure Python, and the speedup of 2
  threads over 1 on the same work (needs 2 usable cores); OpenCV pinned to one thread, so the
  only parallelism is ours.

The recommendation follows from both: `threads` when the stage releases the GIL (threads run
it in parallel without copying frames), `processes` when it holds it (only processes run it in
parallel), `either` when it does both, or the two measurements disagree.
"""

from __future__ import annotations

import hashlib
import pickle
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
from . import gilmeter

__all__ = ["StageReport", "check_stage", "generated_frames"]

#: Threads sharing one instance in the thread-safety check.
SHARING_THREADS = 4


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
    gil_share: float | None  # of its CPU time, holding the GIL; None: fewer than 2 cores
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
        speedup = share = None
        if usable_cores() >= 2:
            speedup = gilmeter.speedup(lambda: build_stage(spec), stream, frames)
            measured = build_stage(spec)
            measured.setup(stream)
            try:
                share = gilmeter.gil_share(measured, stream, frames)
            finally:
                measured.teardown()
    finally:
        cv2.setNumThreads(opencv_threads)

    recommendation, reason, releases = _recommend(
        speedup, share, picklable, stage.frame_independent
    )
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
        gil_share=share,
        releases_gil=releases,
        recommendation=recommendation,
        reason=reason,
        problems=problems,
    )


def _recommend(
    speedup: float | None, share: float | None, picklable: bool, frame_independent: bool
) -> tuple[str, str, bool | None]:
    """(recommendation, why, releases the GIL) from the GIL share and the 2-thread speedup.

    A frame-independent stage can be spread over a frame pool (`hybrid` threads, `pool`
    processes) or segments; one that carries state runs in order under every layout, so only
    where its task runs (a thread or a process of its own, beside the other task) matters.
    """
    if speedup is None or share is None:
        return "either", "one usable core: whether it releases the GIL cannot be measured", None
    where = (
        ("a thread pool (hybrid)", "a process pool or segments (pool, segments)")
        if frame_independent
        else ("its task in a thread (threads)", "its task in a process (processes)")
    )
    measured = f"it holds the GIL {share:.0%} of its CPU time, 2 threads {speedup:.2f}x as fast"
    if share <= gilmeter.GIL_FREE_SHARE and speedup >= gilmeter.GIL_HELD_SPEEDUP:
        why = f"{measured}: threads run it in parallel without copying frames; use {where[0]}"
        return "threads", why, True
    if share >= gilmeter.GIL_HELD_SHARE and speedup < gilmeter.GIL_FREE_SPEEDUP:
        if not picklable:
            return "threads", f"{measured}, but it is not picklable: only threads run it", False
        return "processes", f"{measured}: only processes run it in parallel; use {where[1]}", False
    return (
        "either",
        f"{measured}: it releases the GIL for part of its work (or the two measurements "
        "disagree): compare threads and processes on your input with `vidpipe compare`",
        None,
    )
