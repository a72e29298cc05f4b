"""Frame mappers: how a task's stages run over its decoded frames.

`run_task` hands decoded frames to a mapper and gets processed frames back in frame order. The
mapper decides where the stages run: inline in the task's thread, on a pool of threads, or on a
pool of processes (`pipeline.engine.framepool`). A mapper keeps at most `window` frames in
flight, so memory stays bounded whatever the video's length; the decoder reads into
`window + 2` buffers.

Stages run on several frames at once only when every stage of the chain is frame-independent;
otherwise the mapper processes one frame at a time, in order.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..instrument import trace
from ..instrument.cpuclock import CpuLedger, CpuTime
from ..instrument.procstats import ProcessStats
from ..plan.tasks import in_order_because
from ..report.results import WorkerStats
from ..stages.base import StreamSpec
from .chain import StageChain, copy_stages
from .leftovers import own_thread

__all__ = [
    "FrameMapper",
    "InlineMapper",
    "MapperChoice",
    "MapperFactory",
    "PoolSize",
    "ThreadMapper",
    "inline_everywhere",
    "ordered_window",
]

T = TypeVar("T")
Indexed = tuple[int, np.ndarray]


def ordered_window(
    frames: Iterator[np.ndarray],
    submit: Callable[[int, np.ndarray], T],
    collect: Callable[[T], Indexed],
    window: int,
    start: int = 0,
) -> Iterator[Indexed]:
    """Submit frames as they come, keep at most `window` in flight, yield results in order.

    When this generator resumes after yielding frame i, the consumer is done with every frame up
    to i, so frame i's buffers may be reused: that is what bounds a mapper's memory.
    """
    pending: collections.deque[T] = collections.deque()
    for index, frame in enumerate(frames, start):
        pending.append(submit(index, frame))
        if len(pending) >= window:
            yield collect(pending.popleft())
    while pending:
        yield collect(pending.popleft())


class FrameMapper(abc.ABC):
    """Runs a task's stages over frames; a context manager around its resources."""

    #: Frames in flight at most.
    window: int = 1

    def __init__(self) -> None:
        self.workers: list[WorkerStats] = []
        self.processes: list[ProcessStats] = []
        #: Time the task's thread waited for a pool's results.
        self.wait_seconds = 0.0
        #: Why a pool ran the task's frames in order on one worker; None when it did not.
        self.in_order: str | None = None

    def stage_cpu(self) -> dict[str, CpuTime]:
        """Where each stage's time went (`pipeline.instrument.cpuclock`), by stage name, summed
        over frames and over every thread or process that ran it."""
        return {}

    def stage_seconds(self) -> dict[str, float]:
        """Wall time in each stage, summed over frames and workers."""
        return {name: spent.wall / 1e9 for name, spent in self.stage_cpu().items()}

    def buffers(self) -> list[np.ndarray] | None:
        """Buffers the decoder must read into (a shared-memory ring), or None for its own."""
        return None

    @abc.abstractmethod
    def map(self, frames: Iterator[np.ndarray], start: int = 0) -> Iterator[Indexed]:
        """Processed frames with their indices (the first is `start`), in frame order."""

    def __enter__(self) -> FrameMapper:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


MapperFactory = Callable[[str, tuple[Any, ...], StreamSpec], FrameMapper]


@dataclass(frozen=True)
class PoolSize:
    """A frame pool's size: `workers` (threads or processes) and at most `window` frames in
    flight (None: twice the workers)."""

    workers: int
    window: int | None = None

    def fitted(self, stages: tuple[Any, ...]) -> tuple[int, int]:
        """(workers, window) for a chain of `stages`: none without a stage (nothing to run),
        one, a frame at a time, when a stage needs the frames in order."""
        if not stages:
            return 0, 0
        if not all(stage.frame_independent for stage in stages):
            return 1, 1
        return self.workers, self.window or 2 * self.workers

    def in_order(self, stages: tuple[Any, ...]) -> str | None:
        """Why a pool of this size runs `stages` on one frame at a time, or None."""
        why = in_order_because(stages) if self.workers > 1 else None
        return f"ran in order on one worker, not on {self.workers}: {why}" if why else None


class InlineMapper(FrameMapper):
    """Runs the stages in the task's own thread, one frame after the other."""

    def __init__(self, task: str, stages: tuple[Any, ...], spec: StreamSpec) -> None:
        super().__init__()
        self._chain = StageChain(task, stages, spec)

    def __enter__(self) -> InlineMapper:
        self._chain.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._chain.__exit__(*exc)

    def map(self, frames: Iterator[np.ndarray], start: int = 0) -> Iterator[Indexed]:
        return self._chain.map(frames, start)

    def stage_cpu(self) -> dict[str, CpuTime]:
        return self._chain.cpu.snapshot()


#: Which mapper runs a task's stages, chosen per task (a `pipeline.plan.tasks.Task`).
MapperChoice = Callable[[Any], MapperFactory]


def inline_everywhere(task: Any) -> MapperFactory:
    """Every task's stages run inline, in the task's own thread."""
    return InlineMapper


class ThreadMapper(FrameMapper):
    """Runs frame-independent stages on `workers` threads of the task's process.

    Each thread runs its own copy of the stages, set up in that thread, as each process of a
    process pool does: a stage's instance state (a buffer kept in `self`) is never shared
    between threads, so it cannot race. The frames are shared (no copies). Stages that release
    the GIL (OpenCV, numpy) run in parallel; pure-Python stages take turns on the GIL.
    """

    def __init__(
        self, task: str, stages: tuple[Any, ...], spec: StreamSpec, size: PoolSize
    ) -> None:
        super().__init__()
        self._task = task
        self._stages = stages
        self._spec = spec
        self._cpu = CpuLedger()  # every thread's chain adds to it
        threads, window = size.fitted(stages)
        self.in_order = size.in_order(stages)
        self._threads = max(1, threads)  # no stage, or one in order: the task's own thread
        self.window = window if threads > 1 else 1
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._stats: dict[str, list[float]] = {}
        self._spare: list[tuple[Any, ...]] = []  # copies of the stages no thread has taken yet
        self._chains: list[StageChain] = []  # every chain set up (or being set up)
        self._mine = threading.local()

    def __enter__(self) -> ThreadMapper:
        if self._threads == 1:  # nothing to run in parallel: the task's thread applies them
            self._chains.append(StageChain(self._task, self._stages, self._spec, self._cpu))
            self._chains[0].__enter__()
            return self
        # Copied here, in the task's thread, so that a stage that cannot be copied fails the
        # run before any frame; set up later, by the thread that runs them.
        self._spare = [copy_stages(self._task, self._stages) for _ in range(self._threads)]
        prefix = f"frames-{self._task}"
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix=prefix)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._executor is not None:
            # After a failure, a thread stuck in a stage must not hold the task: it is left
            # behind (the process then exits without it, `leave_stuck_threads`).
            self._executor.shutdown(wait=exc[0] is None, cancel_futures=True)
        teardowns = contextlib.ExitStack()  # every chain's, also when one of them fails
        for chain in self._chains:
            teardowns.push(chain.__exit__)
        teardowns.__exit__(*exc)
        pid = os.getpid()
        self.workers = [
            WorkerStats(name=name, pid=pid, frames=int(frames), busy_seconds=busy)
            for name, (frames, busy) in sorted(self._stats.items())
        ]

    def stage_cpu(self) -> dict[str, CpuTime]:
        return self._cpu.snapshot()

    def _chain(self) -> StageChain:
        """This thread's chain, set up on its first frame."""
        chain: StageChain | None = getattr(self._mine, "chain", None)
        if chain is None:
            own_thread(threading.current_thread())  # another chain's watch may see it start
            with self._lock:
                chain = StageChain(self._task, self._spare.pop(), self._spec, self._cpu)
                self._chains.append(chain)  # torn down at the end even if setup fails
            chain.__enter__()
            self._mine.chain = chain
        return chain

    def _apply(self, frame: np.ndarray, index: int) -> np.ndarray:
        started = time.perf_counter()
        out = self._chain().apply(frame, index)
        busy = time.perf_counter() - started
        name = threading.current_thread().name
        with self._lock:
            stats = self._stats.setdefault(name, [0, 0.0])
            stats[0] += 1
            stats[1] += busy
        return out

    def map(self, frames: Iterator[np.ndarray], start: int = 0) -> Iterator[Indexed]:
        executor = self._executor
        if executor is None:
            return self._chains[0].map(frames, start)

        def submit(index: int, frame: np.ndarray) -> tuple[int, Future[np.ndarray]]:
            return index, executor.submit(self._apply, frame, index)

        def collect(item: tuple[int, Future[np.ndarray]]) -> Indexed:
            begin = trace.now()
            result = item[1].result()
            end = trace.now()
            self.wait_seconds += (end - begin) / 1e9
            trace.span("wait for threads", "wait", begin, end, frame=item[0])
            return item[0], result

        return ordered_window(frames, submit, collect, self.window, start)
