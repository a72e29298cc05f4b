"""The frame loop: each processed frame to the encoder, then to the observers.

The loop itself only moves frames: from the frame mapper (which ran the stages) into the sink
(the encoder), then hands each to the observers, which do everything else a frame is for
(its digest, progress, thumbnails and checkpoints, the thread census, injected faults). A new
concern is a new observer, not another branch in the loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import Interrupted
from ..instrument import cpuclock, trace
from ..instrument.cpuclock import CpuLedger
from ..instrument.faults import configured, fault_at
from ..instrument.procstats import ProcessStats
from ..plan.outdir import OutDir, thumbnail_name
from ..report.results import Phase
from ..stages.base import PixelFormat
from .digest import FrameDigest
from .helpers import Helpers
from .saves import save_thumbnail

__all__ = [
    "CensusObserver",
    "DigestObserver",
    "FaultObserver",
    "FrameObserver",
    "FrameSink",
    "ProgressObserver",
    "SaveObserver",
    "Tally",
    "pump",
]


class FrameSink(Protocol):
    """Where processed frames go: an `Encoder`, or a `Transcoder` that has them already."""

    def write(self, frame: np.ndarray) -> None: ...


class FrameObserver(Protocol):
    """Sees each frame once it is handed to the sink, in frame order. The frame stays valid
    until the observer returns; an observer that keeps it copies it."""

    def on_frame(self, index: int, frame: np.ndarray) -> None: ...


def pump(
    frames: Iterator[tuple[int, np.ndarray]],
    sink: FrameSink,
    observers: Sequence[FrameObserver],
    cancelled: threading.Event,
) -> None:
    """Hand every frame to `sink`, then to each observer; `Interrupted` once `cancelled`."""
    for index, frame in frames:
        if cancelled.is_set():
            raise Interrupted()
        sink.write(frame)
        for observer in observers:
            observer.on_frame(index, frame)


@dataclass
class Tally:
    """What a task's ranges have produced so far, in this run and (`resumed`) earlier ones."""

    resumed: int = 0
    frames: int = 0
    thumbs: int = 0
    latest: str | None = None  # the newest thumbnail's file name
    threads: set[str] = field(default_factory=set)  # seen in this process while the task ran
    processes: list[ProcessStats] = field(default_factory=list)
    seconds: dict[Phase, float] = field(default_factory=dict)  # by phase
    #: Where the digest's and the saves' time went (the saves in the save thread).
    cpu: CpuLedger = field(default_factory=CpuLedger)

    @classmethod
    def resuming(cls, frames: int, thumbnails: list[int]) -> Tally:
        """The tally of a task that takes over `frames` frames and these thumbnails."""
        latest = thumbnail_name(thumbnails[-1]) if thumbnails else None
        return cls(resumed=frames, frames=frames, thumbs=len(thumbnails), latest=latest)

    def add(self, phase: Phase, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds


class DigestObserver:
    """Hashes every frame into `digest`, timing it as the digest phase."""

    def __init__(self, digest: FrameDigest, tally: Tally) -> None:
        self.digest = digest
        self._tally = tally

    def on_frame(self, index: int, frame: np.ndarray) -> None:
        begin = cpuclock.read()
        self.digest.update(frame)
        end = cpuclock.read()
        self._tally.cpu.add("digest", begin, end)
        self._tally.add(Phase.DIGEST, (end.wall - begin.wall) / 1e9)
        trace.span("digest", "digest", begin.wall, end.wall, frame=index)


class ProgressObserver:
    """Counts the task's frames (`first` is the range's first index, `before` the frames done
    before it) and publishes the count."""

    def __init__(self, helpers: Helpers, task: str, tally: Tally, first: int) -> None:
        self._progress = helpers.progress
        self._task = task
        self._tally = tally
        self._base = tally.frames - first

    def on_frame(self, index: int, frame: np.ndarray) -> None:
        self._tally.frames = self._base + index + 1
        self._progress.update(self._task, self._tally.frames)


class CensusObserver:
    """Notes the threads alive in this process once the task is running (its first frame)."""

    def __init__(self, tally: Tally) -> None:
        self._tally = tally
        self._done = False

    def on_frame(self, index: int, frame: np.ndarray) -> None:
        if not self._done:
            self._done = True
            self._tally.threads.update(t.name for t in threading.enumerate())


def _save_thumbnail(task: str, index: int, path: Path, frame: np.ndarray, fmt: PixelFormat) -> None:
    fault_at("saver", task, index)
    save_thumbnail(path, frame, fmt)


def measured(ledger: CpuLedger, name: str, job: Callable[[], None]) -> Callable[[], None]:
    """`job`, its time (in whichever thread runs it) added to `ledger` under `name`."""

    def run() -> None:
        begin = cpuclock.read()
        try:
            job()
        finally:
            ledger.add(name, begin, cpuclock.read())

    return run


class SaveObserver:
    """Every `every` frames, queues a thumbnail (a copy of the frame) for the save thread, then
    calls `on_save` (a checkpoint); the time taken is the saves phase."""

    def __init__(
        self,
        helpers: Helpers,
        out: OutDir,
        task: str,
        every: int,
        pix_fmt: PixelFormat,
        tally: Tally,
        on_save: Callable[[], None] | None,
    ) -> None:
        self._saver = helpers.saver
        self._out, self._task, self._every, self._fmt = out, task, every, pix_fmt
        self._tally = tally
        self._on_save = on_save

    def on_frame(self, index: int, frame: np.ndarray) -> None:
        if index % self._every:
            return
        begin = trace.now()
        path = self._out.thumbnail(self._task, index)
        self._tally.thumbs, self._tally.latest = self._tally.thumbs + 1, path.name
        job = partial(_save_thumbnail, self._task, index, path, frame.copy(), self._fmt)
        self._saver.submit(measured(self._tally.cpu, "saves", job))
        if self._on_save is not None:
            self._on_save()
        self._tally.add(Phase.SAVES, (trace.now() - begin) / 1e9)


class FaultObserver:
    """Kills the decoder or the encoder at the frame `VIDPIPE_FAULT` names (tests only; see
    `pipeline.instrument.faults`). Only added to a loop when a fault is configured."""

    def __init__(self, task: str, decoder: Callable[[], None], encoder: Callable[[], None]) -> None:
        self._task, self._decoder, self._encoder = task, decoder, encoder

    @staticmethod
    def wanted() -> bool:
        return configured() is not None

    def on_frame(self, index: int, frame: np.ndarray) -> None:
        fault_at("decoder", self._task, index, kill=self._decoder)
        fault_at("encoder", self._task, index, kill=self._encoder)
