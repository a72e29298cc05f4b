"""How much a stage holds the GIL, measured two ways (`vidpipe check-stage`).

* Directly: the stage runs in one thread while a second thread spins in pure Python, wanting
  the GIL all the time. The spinner is blocked exactly while the stage holds the GIL (its own
  waits for a core are told apart, `pipeline.instrument.cpuclock`), so its blocked time over the
  stage's own CPU time is the share of the stage's work done holding the GIL: near 100% for
  pure Python, near 0% for OpenCV, which releases it.
* Indirectly: the speedup of 2 threads over 1 on the same work, each thread with its own
  instance (the fastest of `TIMING_ROUNDS` interleaved runs of each; needs 2 usable cores).

OpenCV is pinned to one thread by the caller, so the only parallelism is ours.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from ..instrument import cpuclock
from ..instrument.cpuclock import CpuTime
from ..stages.base import Stage, StreamSpec

__all__ = [
    "GIL_FREE_SHARE",
    "GIL_FREE_SPEEDUP",
    "GIL_HELD_SHARE",
    "GIL_HELD_SPEEDUP",
    "TIMING_ROUNDS",
    "TIMING_SECONDS",
    "gil_share",
    "speedup",
]

#: 2 threads at least this much faster than 1: the stage releases the GIL. Not 2: on a shared
#: machine whose two CPUs may be hyperthreads of one core, OpenCV blurs measured 1.37x to 1.86x
#: while stages that hold the GIL measure 0.8x to 1.0x.
GIL_FREE_SPEEDUP = 1.25
#: Below this: it holds the GIL. In between, it releases it for part of its work.
GIL_HELD_SPEEDUP = 1.1
#: Holding the GIL for at most this share of its CPU time, the stage releases it enough: the GIL
#: caps what threads can gain at 1 / share, here at least 2x.
GIL_FREE_SHARE = 0.5
#: For at least this share: it holds it.
GIL_HELD_SHARE = 0.6
#: Seconds of work a timing run aims at (one thread), and rounds of it (the fastest counts).
TIMING_SECONDS = 0.3
TIMING_ROUNDS = 7
#: Wall seconds after which `gil_share` stops (after a frame at least). A stage that releases
#: the GIL often runs many times slower beside the spinner (each time, it waits for the spinner
#: to be made to let go): 0.3 s of its work took 40 s. The share is a ratio: fewer frames do.
SHARE_WALL_SECONDS = 2.0


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


def speedup(
    fresh: Callable[[], Stage],
    spec: StreamSpec,
    frames: list[np.ndarray],
    rounds: int = TIMING_ROUNDS,
) -> float:
    """How much faster 2 threads do the work of 1, each with an instance of its own (the
    fastest of `rounds` interleaved timings of each)."""
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
        for _ in range(rounds):  # interleaved: one thread, then two, then again
            ones.append(_timed([work(stages[0], calls)]))
            twos.append(_timed([work(stage, calls // 2) for stage in stages]))
        # The fastest of each: on a shared machine, other work only ever adds time, so the
        # minimum is the closest to the stage's own cost (as `timeit` reasons).
        return round(min(ones) / min(twos), 2)
    finally:
        for stage in stages:
            stage.teardown()


def gil_share(stage: Stage, spec: StreamSpec, frames: list[np.ndarray]) -> float:
    """The share of `stage`'s CPU time (set up already) during which it holds the GIL,
    measured beside a thread of pure Python (see the module docstring)."""
    per_frame = _per_frame(stage, frames)
    calls = max(4, min(2000, round(TIMING_SECONDS / max(per_frame, 1e-6))))
    copies = [frames[k % len(frames)].copy() for k in range(calls)]  # copied before timing
    spinner: list[CpuTime] = []
    stop, started = threading.Event(), threading.Event()

    def spin() -> None:
        begin = cpuclock.read()
        started.set()
        count = 0
        while not stop.is_set():
            count += 1
        spinner.append(CpuTime().add(begin, cpuclock.read()))

    thread = threading.Thread(target=spin, name="gil-spinner")
    thread.start()
    started.wait()
    worked = CpuTime()
    try:
        for k, frame in enumerate(copies):
            begin = cpuclock.read()
            stage.process(frame, k % len(frames))
            worked = worked.add(begin, cpuclock.read())
            if worked.wall > SHARE_WALL_SECONDS * 1e9:  # nanoseconds
                break
    finally:
        stop.set()
        thread.join()
    held = spinner[0].blocked
    return round(min(1.0, held / worked.on_cpu), 2) if worked.on_cpu > 0 else 0.0


def stage_seconds(stage: Stage, frames: list[np.ndarray]) -> tuple[float, float]:
    """(seconds a frame takes in `stage`, seconds copying a frame takes), each the fastest of
    3 passes over `frames` on one thread; the stage's time leaves out the copy every
    measurement hands it. A stage that costs less than the copy is too cheap to measure: its
    timings would be the copies'."""
    passes, copies = [], []
    for _ in range(3):
        passes.append(_per_frame(stage, frames))
        began = time.perf_counter()
        for frame in frames:
            frame.copy()
        copies.append((time.perf_counter() - began) / len(frames))
    return max(0.0, min(passes) - min(copies)), min(copies)


def _per_frame(stage: Stage, frames: list[np.ndarray]) -> float:
    """Seconds one frame takes (after one frame's warm-up)."""
    stage.process(frames[0].copy(), 0)
    began = time.perf_counter()
    for i, frame in enumerate(frames):
        stage.process(frame.copy(), i)
    return (time.perf_counter() - began) / len(frames)
