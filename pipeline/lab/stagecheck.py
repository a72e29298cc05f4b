"""`vidpipe check-stage`: does a stage keep the protocol's rules, and which layout suits it?

The stage runs on generated frames, in this process, and is checked for what the layouts rely
on (see `pipeline.stages.base`):

* picklable: process layouts pickle it to their workers; its copy must give the same frames;
* deterministic: two fresh instances give the same frames;
* for a stage that declares itself frame-independent: the same frames when processed in
  reverse order, and when four threads each run their own copy (as `hybrid` does), which
  finds state they share through the module or the class;
* whether it releases the GIL, measured two ways (`pipeline.lab.gilmeter`): the share of its
  CPU time during which it holds the GIL, beside a thread of pure Python, and the speedup of 2
  threads over 1 on the same work (needs 2 usable cores) read against the speedup 2 threads
  get on GIL-free work in the same rounds; OpenCV pinned to one thread, so the only
  parallelism is ours.

The recommendation follows from both: `threads` when the stage's threads gain most of what
GIL-free work gains (threads run it in parallel without copying frames), `processes` when they
gain next to nothing and it holds the GIL (only processes run it in parallel), `either` when
it does both, when the two measurements disagree, or when the machine could not show it (2
threads gained too little even on GIL-free work: other processes held the cores).
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from ..config.settings import StageSpec, usable_cores
from ..engine import leftovers
from ..engine.leftovers import StageWatch
from ..errors import ConfigError, PipelineError, StageError, reraise_interrupt
from ..stages.base import PixelFormat, Stage, StreamSpec
from ..stages.files import FileModules, Unsendable
from ..stages.loader import build_stage
from . import gilmeter
from .stageframes import SHARING_THREADS, by_threads, digests, generated_frames

__all__ = ["StageReport", "check_stage", "generated_frames"]

#: A 2-thread speedup beyond what 2 threads can give on this machine, by more than this
#: factor, is noise: measured again `REMEASURES` times, then left out.
NOISE_MARGIN = 1.1
REMEASURES = 2


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
    seconds_per_frame: float  # on one thread, OpenCV on one thread
    speedup_2_threads: float | None  # None: not measured (too cheap, one core, noise)
    #: 2 threads' speedup on GIL-free work in the same rounds: what this machine could show.
    machine_speedup_2_threads: float | None
    #: Cores other processes kept busy on average while the speedups were measured.
    foreign_cores: float | None
    gil_share: float | None  # of its CPU time, holding the GIL; None: not measured
    releases_gil: bool | None
    recommendation: str
    reason: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what to know that breaks no rule

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def unclear_here(self) -> bool:
        """True when this machine could not show what threads gain (other processes held the
        cores), so that the GIL verdict was left open."""
        machine = self.machine_speedup_2_threads
        if machine is None:
            return False
        return not gilmeter.Speedup(machine, machine, self.foreign_cores).clear

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "unclear_here": self.unclear_here}


def check_stage(
    spec: StageSpec, *, width: int = 320, height: int = 240, count: int = 24
) -> StageReport:
    """Check the stage `spec` names on `count` generated frames of `width` x `height`.

    Raises `ConfigError` when the stage cannot be built, and `PipelineError` when it raises on
    the generated frames (its original error as `__cause__`).
    """
    stage = build_stage(spec)
    watch = StageWatch()  # what the stage leaves running is killed or named, as in a run
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
    finally:
        watch.end([stage])
        leftovers.warn(leftovers.settle())


def _picklable(
    stage: Stage, stream: StreamSpec, frames: list[np.ndarray], reference: dict[int, str]
) -> str | None:
    """What is wrong with `stage` travelling to a worker process pickled, or None."""
    try:
        sent = pickle.dumps(stage)
        with FileModules.as_in_a_new_process():  # as a worker unpickles it
            copied = pickle.loads(sent)
    except Exception as exc:
        if isinstance(exc, Unsendable):  # it says what to write instead
            return f"not picklable: process layouts cannot send it to their workers: {exc}"
        return (
            f"not picklable before setup() ({type(exc).__name__}: {exc}): process layouts "
            "cannot send it to their workers; keep only configuration until setup()"
        )
    if digests(copied, stream, frames, list(range(len(frames)))) != reference:
        return "a pickled copy gives other frames: configuration is lost"
    return None


def _frame_parallel(
    spec: StageSpec, stream: StreamSpec, frames: list[np.ndarray], reference: dict[int, str]
) -> tuple[bool, bool, list[str]]:
    """(gives the same frames in any order, under threads each with its own copy; problems)."""
    problems = []
    backwards = digests(build_stage(spec), stream, frames, list(range(len(frames)))[::-1])
    order_independent = backwards == reference
    if not order_independent:
        problems.append(
            "claims frame_independent but gives other frames in another order: set "
            "frame_independent = False, or drop the state carried between frames"
        )
    try:
        threaded = by_threads(build_stage(spec), stream, frames)
    except StageError as exc:  # it cannot be copied for each thread, as hybrid copies it
        problems.append(exc.error)
        return order_independent, False, problems
    thread_safe = all(reference[i] == digest for i, digest in threaded)
    if not thread_safe:
        problems.append(
            f"claims frame_independent but {SHARING_THREADS} threads, each with its own "
            "copy (as hybrid runs it), give other frames: they share what the module or the "
            "class holds; keep per-frame data in local variables or in self"
        )
    return order_independent, thread_safe, problems


def _rules(
    stage: Stage, spec: StageSpec, stream: StreamSpec, count: int
) -> tuple[bool, bool, bool | None, bool | None, list[str]]:
    """(picklable, deterministic, order-independent, thread-safe, problems) on frames of
    `stream`; the last two None when the stage runs its frames in order."""
    frames = generated_frames(stream.width, stream.height, count, stream.pix_fmt)
    reference = digests(build_stage(spec), stream, frames, list(range(count)))
    problems: list[str] = []
    unpicklable = _picklable(stage, stream, frames, reference)
    picklable = unpicklable is None or not unpicklable.startswith("not picklable")
    problems += [unpicklable] if unpicklable else []
    deterministic = digests(build_stage(spec), stream, frames, list(range(count))) == reference
    if not deterministic:
        problems.append(
            "not deterministic: two runs give different frames (seed randomness from "
            "the configuration, never from the clock)"
        )
    order_independent = thread_safe = None
    if stage.frame_independent:
        order_independent, thread_safe, found = _frame_parallel(spec, stream, frames, reference)
        problems += found
    return picklable, deterministic, order_independent, thread_safe, problems


def _check(stage: Stage, spec: StageSpec, width: int, height: int, count: int) -> StageReport:
    # Every format the stage takes: the decoder hands it I420 frames when every stage of its
    # task accepts them, BGR otherwise, so either may reach it in a run.
    # A video of odd size is decoded to BGR: I420 cannot hold it (`pipeline.plan.tasks`).
    odd = width % 2 or height % 2
    possible = (PixelFormat.BGR24,) if odd else (PixelFormat.BGR24, PixelFormat.YUV420P)
    formats = [f for f in possible if f in stage.accepts]
    if not formats:
        takes = ", ".join(sorted(f.value for f in stage.accepts))
        raise ConfigError(
            f"--size {width}x{height}: stage {stage.name} takes only {takes} frames, which "
            "need an even width and height; give an even --size"
        )
    streams = [StreamSpec(width, height, Fraction(25), f) for f in formats]
    picklable = deterministic = True
    order_independent = thread_safe = None if not stage.frame_independent else True
    problems: list[str] = []
    notes: list[str] = []
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for stream in streams:
            found = _rules(stage, spec, stream, count)
            picklable &= found[0]
            deterministic &= found[1]
            if stage.frame_independent:
                order_independent = bool(order_independent and found[2])
                thread_safe = bool(thread_safe and found[3])
            where = f"{stream.pix_fmt.value} frames: " if len(streams) > 1 else ""
            problems += [f"{where}{problem}" for problem in found[4]]
        speed = _speed(spec, streams[0], count, notes)
    finally:
        cv2.setNumThreads(opencv_threads)

    recommendation, reason, releases = _recommend(
        speed, picklable, thread_safe, stage.frame_independent
    )
    return StageReport(
        stage=stage.describe(),
        spec=str(spec),
        frames=count,
        size=f"{width}x{height}",
        pix_fmt=", ".join(f.value for f in formats),
        frame_independent=stage.frame_independent,
        picklable=picklable,
        deterministic=deterministic,
        order_independent=order_independent,
        thread_safe=thread_safe,
        seconds_per_frame=speed.seconds_per_frame,
        speedup_2_threads=speed.speedup,
        machine_speedup_2_threads=speed.machine,
        foreign_cores=speed.foreign_cores,
        gil_share=speed.share,
        releases_gil=releases,
        recommendation=recommendation,
        reason=reason,
        problems=problems,
        notes=notes,
    )


@dataclass(frozen=True)
class _Speed:
    """What was measured of the stage's cost: seconds a frame on one thread, and (None when
    not measured) 2 threads' speedup over 1 and the share of its CPU time holding the GIL."""

    seconds_per_frame: float
    speedup: float | None = None
    share: float | None = None
    machine: float | None = None  # 2 threads' speedup on GIL-free work, beside `speedup`
    foreign_cores: float | None = None  # other processes' cores busy meanwhile
    why_not: str = ""  # why speedup and share were not measured


def _speed(spec: StageSpec, stream: StreamSpec, count: int, notes: list[str]) -> _Speed:
    """Measure the stage's cost and whether it releases the GIL, unless it is too cheap for
    that to mean anything or there is one core; a speedup that 2 threads cannot give on this
    machine (noise) is measured again, and noted if it stays."""
    frames = generated_frames(stream.width, stream.height, count, stream.pix_fmt)
    measured = build_stage(spec)
    measured.setup(stream)
    try:
        per_frame, copying = gilmeter.stage_seconds(measured, frames)
        if per_frame < copying:
            why = (
                f"too cheap to measure: {per_frame * 1e6:.0f} µs a frame, less than copying "
                f"the frame ({copying * 1e6:.0f} µs); spreading it over threads or processes "
                "gains nothing"
            )
            return _Speed(per_frame, why_not=why)
        cores = usable_cores()
        if cores < 2:
            return _Speed(per_frame, why_not="one usable core: the GIL cannot show")
        share = gilmeter.gil_share(measured, stream, frames)
    finally:
        measured.teardown()
    limit = min(2, cores) * NOISE_MARGIN  # 2 threads can at most double the pace
    for _ in range(1 + REMEASURES):
        speedup = gilmeter.speedup(lambda: build_stage(spec), stream, frames)
        if speedup.stage <= limit:
            return _Speed(per_frame, speedup.stage, share, speedup.machine, speedup.foreign_cores)
    notes.append(
        f"2 threads measured {speedup.stage:.2f}x as fast as 1, {1 + REMEASURES} times, where 2 "
        "threads can at most double the pace: the machine was busy (noise); the speedup is "
        "left out of the recommendation"
    )
    return _Speed(per_frame, None, share, why_not="the 2-thread speedup was noise")


def _recommend(
    speed: _Speed, picklable: bool, thread_safe: bool | None, frame_independent: bool
) -> tuple[str, str, bool | None]:
    """(recommendation, why, releases the GIL) from the GIL share and the 2-thread speedup.

    A frame-independent stage can be spread over a frame pool (`hybrid` threads, `pool`
    processes) or segments; one that carries state runs in order under every layout, so only
    where its task runs (a thread or a process of its own, beside the other task) matters.
    Never threads for a stage whose copies race on shared state, never processes for one that
    cannot be pickled.
    """
    if thread_safe is False:
        if picklable:
            why = "threads running it race on state its copies share; processes each have their own"
            return "processes", f"{why}: use a process pool or segments (pool, segments)", None
        return "none", "neither thread-safe nor picklable: fix the problems above first", None
    if speed.speedup is None or speed.share is None or speed.machine is None:
        return "either", speed.why_not, None
    share = speed.share
    measured_speed = gilmeter.Speedup(speed.speedup, speed.machine, speed.foreign_cores)
    where = (
        ("a thread pool (hybrid)", "a process pool or segments (pool, segments)")
        if frame_independent
        else ("its task in a thread (threads)", "its task in a process (processes)")
    )
    measured = (
        f"it holds the GIL {share:.0%} of its CPU time, 2 threads {measured_speed.stage:.2f}x "
        f"as fast (on GIL-free work {measured_speed.machine:.2f}x)"
    )
    if not measured_speed.clear:
        busy = measured_speed.foreign_cores
        cause = (
            f"other processes kept {busy:.1f} cores busy meanwhile"
            if busy is not None and busy > gilmeter.BUSY_CORES
            else "2 threads gained too little even on work that releases the GIL"
        )
        why = f"{measured}: unclear on this machine: {cause}; check again when it is quieter"
        return "either", why, None
    gain = measured_speed.gain
    if gain >= gilmeter.GAIN_FREE and share <= gilmeter.GIL_HELD_SHARE:
        why = f"{measured}: threads run it in parallel without copying frames; use {where[0]}"
        return "threads", why, True
    if gain <= gilmeter.GAIN_HELD and share > gilmeter.GIL_FREE_SHARE:
        if not picklable:
            return "threads", f"{measured}, but it is not picklable: only threads run it", False
        return "processes", f"{measured}: only processes run it in parallel; use {where[1]}", False
    return (
        "either",
        f"{measured}: it releases the GIL for part of its work (or the two measurements "
        "disagree): compare threads and processes on your input with `vidpipe compare`",
        None,
    )
