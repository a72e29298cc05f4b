"""How much a stage holds the GIL, measured two ways (`vidpipe check-stage`).

* Directly: the stage runs in one thread while a second thread spins in pure Python, wanting
  the GIL all the time. The spinner is blocked exactly while the stage holds the GIL (its own
  waits for a core are told apart, `pipeline.instrument.cpuclock`), so its blocked time over the
  stage's own CPU time is the share of the stage's work done holding the GIL: near 100% for
  pure Python, near 0% for OpenCV, which releases it.
* Indirectly: the speedup of 2 threads over 1 on the same work, each thread with its own
  instance (the fastest of `TIMING_ROUNDS` interleaved runs of each; needs 2 usable cores).
  Beside it, in the same interleaved rounds, the same speedup on work known to release the GIL
  (hashing, which CPython does without the GIL): what 2 threads can gain on this machine right
  now. Other processes busy on the cores lower both, so the stage's speedup is read against
  the machine's, never against a fixed 2x; and the CPU other processes used meanwhile is
  measured (`pipeline.instrument.machineload`): beyond `BUSY_CORES` on average, the rounds
  cannot tell the stage's gain from the weather.

OpenCV is pinned to one thread by the caller, so the only parallelism is ours.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..instrument import cpuclock, machineload
from ..instrument.cpuclock import CpuTime
from ..stages.base import Stage, StreamSpec

__all__ = [
    "BUSY_CORES",
    "GAIN_FREE",
    "GAIN_HELD",
    "GIL_FREE_SHARE",
    "GIL_HELD_SHARE",
    "MACHINE_SPEEDUP",
    "TIMING_ROUNDS",
    "TIMING_SECONDS",
    "Speedup",
    "gil_share",
    "speedup",
]

#: 2 threads at least this much faster than 1 on GIL-free work: the machine has the free cores
#: to show what threads gain. Below it (other processes hold the cores, or the two CPUs are
#: hyperthreads of one core), the speedup cannot tell a stage that releases the GIL from one
#: that holds it.
MACHINE_SPEEDUP = 1.25
#: Other processes keeping more than this many cores busy on average while the speedups were
#: measured: the machine was busy, and the speedups say nothing clear.
BUSY_CORES = 0.25
#: A stage whose threads gain at least this share of what they gain on GIL-free work releases
#: the GIL (`Speedup.gain`); at most `GAIN_HELD`, it holds it; in between, partly.
GAIN_FREE = 0.5
GAIN_HELD = 0.15
#: Holding the GIL for at most this share of its CPU time, the stage releases it enough: the GIL
#: caps what threads can gain at 1 / share, here at least 2x.
GIL_FREE_SHARE = 0.5
#: Holding it for more than this share while its threads gain: the two measurements disagree.
GIL_HELD_SHARE = 0.9
#: Seconds of work a timing run aims at (one thread), and rounds of it (the fastest counts).
TIMING_SECONDS = 0.3
TIMING_ROUNDS = 7
#: Wall seconds after which `gil_share` stops (after a frame at least). A stage that releases
#: the GIL often runs many times slower beside the spinner (each time, it waits for the spinner
#: to be made to let go): 0.3 s of its work took 40 s. The share is a ratio: fewer frames do.
SHARE_WALL_SECONDS = 2.0
#: What the GIL-free reference hashes per call (CPython hashes more than 2 KiB without the GIL).
_REFERENCE_BYTES = bytes(256 * 1024)


class Speedup(NamedTuple):
    """2 threads' speedup over 1 on the stage's work, and on GIL-free work in the same rounds;
    and the cores other processes kept busy meanwhile (None: not known here)."""

    stage: float
    machine: float
    foreign_cores: float | None = None

    @property
    def clear(self) -> bool:
        """Whether the machine could show what threads gain: free cores, not busy elsewhere."""
        busy = self.foreign_cores is not None and self.foreign_cores > BUSY_CORES
        return self.machine >= MACHINE_SPEEDUP and not busy

    @property
    def gain(self) -> float:
        """The share of what 2 threads gained on GIL-free work that they gained on the stage's:
        near 1 for a stage that releases the GIL, near 0 (or below) for one that holds it."""
        return (self.stage - 1) / (self.machine - 1) if self.machine > 1 else 0.0


def _hashing(calls: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(calls):
            hashlib.sha256(_REFERENCE_BYTES).digest()

    return run


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
) -> Speedup:
    """How much faster 2 threads do the work of 1, each with an instance of its own, and how
    much faster they hash (the fastest of `rounds` interleaved timings of each)."""
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
        per_hash = _timed([_hashing(8)]) / 8
        hashes = 2 * max(2, round(TIMING_SECONDS / 3 / max(per_hash, 1e-6) / 2))
        ones, twos, hash_ones, hash_twos = [], [], [], []
        load = machineload.read()
        for _ in range(rounds):  # interleaved: one thread, then two, then again
            ones.append(_timed([work(stages[0], calls)]))
            twos.append(_timed([work(stage, calls // 2) for stage in stages]))
            hash_ones.append(_timed([_hashing(hashes)]))
            hash_twos.append(_timed([_hashing(hashes // 2), _hashing(hashes // 2)]))
        # The fastest of each: on a shared machine, other work only ever adds time, so the
        # minimum is the closest to the stage's own cost (as `timeit` reasons).
        foreign = load.until_now().foreign_cores
        return Speedup(
            round(min(ones) / min(twos), 2),
            round(min(hash_ones) / min(hash_twos), 2),
            None if foreign is None else round(foreign, 2),
        )
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
