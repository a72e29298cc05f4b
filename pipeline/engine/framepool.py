"""A pool of worker processes for a task's per-frame stages (the `pool` layout).

The task's process decodes and encodes; `workers` processes run the stages. Jobs go out through
one bounded `multiprocessing` queue (any idle worker takes the next frame), results come back
through each worker's pipe and are put back in frame order. Two transports:

* `pickle`: the frames themselves travel, pickled, through the queue and back through the pipe;
* `shm`: the decoder reads straight into a ring of shared-memory slots, a worker writes its
  result into the matching slot of an output ring, and only slot numbers travel.

The task's process owns both rings and unlinks them when the pool closes, also on errors and
interrupts. A worker that dies fails the task at once, naming the worker.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..config.settings import Transport
from ..errors import PipelineError, StageError
from ..instrument import trace
from ..instrument.cpuclock import CpuLedger, CpuTime
from ..instrument.procstats import self_stats
from ..report.reporters import NullReporter
from ..report.results import WorkerStats
from ..stages.base import StreamSpec
from .chain import StageChain
from .framemap import FrameMapper, Indexed, PoolSize, ordered_window
from .messages import FrameReady
from .shm import SharedFrameRing, ring_name
from .supervisor import Supervisor, WorkerLink

__all__ = ["ProcessMapper"]

#: After a frame fails, how long the pool waits for earlier frames still in flight to finish
#: or fail, so that the run names the earliest failing frame (seconds; a stage's frame time).
FAILURE_GRACE = 10.0


def _output_spec(stages: tuple[Any, ...], spec: StreamSpec) -> StreamSpec:
    for stage in stages:
        spec = stage.output_spec(spec)
    return spec


def _pool_worker(
    link: WorkerLink,
    name: str,
    task: str,
    stages: tuple[Any, ...],
    spec: StreamSpec,
    rings: tuple[str, str, int] | None,
    jobs: Any,
    opencv_threads: int | None,
    trace_dir: Path | None,
) -> tuple[WorkerStats, Any, dict[str, CpuTime]]:
    with trace.session(f"pool worker {name} of {task}", trace_dir):
        if opencv_threads is not None:
            cv2.setNumThreads(opencv_threads)
        in_ring = out_ring = None
        if rings is not None:
            in_ring = SharedFrameRing.attach(rings[0], spec, rings[2])
            out_ring = SharedFrameRing.attach(rings[1], _output_spec(stages, spec), rings[2])
        frames, busy, waiting, copying = 0, 0.0, 0.0, 0.0
        chain = StageChain(task, stages, spec)
        try:
            with chain:
                while True:
                    started = time.perf_counter()
                    job = jobs.get()
                    waiting += time.perf_counter() - started
                    if job is None:
                        break
                    index, payload = job
                    started = time.perf_counter()
                    if in_ring is not None and out_ring is not None:
                        out = chain.apply(in_ring.frames[payload], index)
                        begin = trace.now()
                        np.copyto(out_ring.frames[payload], out)
                        link.send(FrameReady(index, payload))
                    else:
                        out = chain.apply(payload, index)
                        begin = trace.now()
                        link.send(FrameReady(index, out))  # pickled into the pipe
                    end = trace.now()
                    copying += (end - begin) / 1e9
                    trace.span("copy", "copy", begin, end, frame=index)
                    busy += time.perf_counter() - started
                    frames += 1
        finally:
            for ring in (in_ring, out_ring):
                if ring is not None:
                    ring.close()
        stats = WorkerStats(
            name, os.getpid(), frames, busy_seconds=busy, wait_seconds=waiting, copy_seconds=copying
        )
        return stats, self_stats(f"pool:{task}"), chain.cpu.snapshot()


class ProcessMapper(FrameMapper):
    """Runs frame-independent stages on `workers` processes; see the module docstring.

    A chain with a stage that is not frame-independent runs on one worker, one frame at a time.
    """

    def __init__(
        self,
        task: str,
        stages: tuple[Any, ...],
        spec: StreamSpec,
        size: PoolSize,
        *,
        transport: Transport,
        start_method: str,
        run_id: str,
        opencv_threads: int | None = None,
        trace_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self._task = task
        self._stages = stages
        self._spec = spec
        # No stage: nothing to send anywhere. A stage that needs order: one worker, in order.
        self._count, self.window = size.fitted(stages)
        self.in_order = size.in_order(stages)
        self._slots = self.window + 2  # window in flight, one being decoded, one being encoded
        self._transport = transport
        self._context = multiprocessing.get_context(start_method)
        self._run_id = run_id
        self._opencv_threads = opencv_threads
        self._trace_dir = trace_dir
        self._rings: list[SharedFrameRing] = []
        self._done: dict[int, Any] = {}
        self._in_flight = 0
        self._stage_cpu = CpuLedger()
        self._supervisor: Supervisor | None = None
        self._jobs: Any = None

    def __enter__(self) -> ProcessMapper:
        try:
            self._start()
        except BaseException:
            self._close(failed=True)
            raise
        return self

    def _start(self) -> None:
        if not self._count:
            return
        rings = None
        if self._transport is Transport.SHM:
            names = (
                ring_name(self._run_id, self._task, "in"),
                ring_name(self._run_id, self._task, "out"),
            )
            out_spec = _output_spec(self._stages, self._spec)
            for name, spec in zip(names, (self._spec, out_spec), strict=True):
                self._rings.append(SharedFrameRing.create(name, spec, self._slots))
            rings = (names[0], names[1], self._slots)
        self._jobs = self._context.Queue(maxsize=self.window + self._count)
        self._supervisor = Supervisor(
            self._context, NullReporter(), self._on_message, own_groups=False
        )
        for k in range(self._count):
            self._supervisor.start(
                f"pool-{k}",
                _pool_worker,
                f"pool-{k}",
                self._task,
                self._stages,
                self._spec,
                rings,
                self._jobs,
                self._opencv_threads,
                self._trace_dir,
                task=self._task,
                role=f"pool worker {k}",
            )

    def __exit__(self, *exc_info: object) -> None:
        self._close(failed=exc_info[0] is not None)

    def _close(self, *, failed: bool) -> None:
        try:
            if self._supervisor is not None:
                try:
                    if not failed:
                        self._collect()
                finally:
                    # Also when collecting failed or was interrupted: a worker left running
                    # (stopped, or still starting) would outlive this process's queues and
                    # fail on them with a traceback of its own.
                    self._supervisor.stop()
        finally:
            if self._jobs is not None:
                self._jobs.cancel_join_thread()  # never block on frames nobody will read
                self._jobs.close()
            for ring in self._rings:
                ring.close()

    def _collect(self) -> None:
        """Tell every worker to finish; gather what each measured."""
        assert self._supervisor is not None
        for _ in range(self._count):
            self._jobs.put(None)
        results = self._supervisor.results()
        for _, (stats, process, cpu) in sorted(results.items()):
            self.workers.append(stats)
            self.processes.append(process)
            self._stage_cpu.merge(cpu)

    def stage_cpu(self) -> dict[str, CpuTime]:
        return self._stage_cpu.snapshot()

    def buffers(self) -> list[np.ndarray] | None:
        return self._rings[0].frames if self._rings else None

    def _on_message(self, worker: str, message: object) -> None:
        if isinstance(message, FrameReady):
            self._done[message.index] = message.payload

    def _earliest_failure(self, failed: StageError, awaited: int) -> StageError:
        """The failure of the earliest frame, as a run in order would name it.

        Workers finish frames in any order, so the first failure heard of may be a later
        frame's while an earlier one, still in flight, fails too. Wait for the frames from
        `awaited` to the failed one (each is in flight: frames are submitted in order), at most
        `FAILURE_GRACE` seconds, and keep the earliest failure.
        """
        assert self._supervisor is not None
        first = failed
        deadline = time.monotonic() + FAILURE_GRACE
        while (
            first.index > awaited
            and any(i not in self._done for i in range(awaited, first.index))
            and self._supervisor.running
            and (left := deadline - time.monotonic()) > 0
        ):
            try:
                self._supervisor.pump(left)
            except StageError as other:
                if 0 <= other.index < first.index:
                    first = other
            except PipelineError:  # a worker died meanwhile: the stage's failure stands
                break
        return first

    def map(self, frames: Iterator[np.ndarray], start: int = 0) -> Iterator[Indexed]:
        if not self._count:
            return enumerate(frames, start)
        shm = self._transport is Transport.SHM

        def submit(index: int, frame: np.ndarray) -> int:
            # The decoder filled slot (its own count) % slots; its count starts at 0.
            self._jobs.put((index, (index - start) % self._slots if shm else frame))
            self._in_flight += 1
            trace.counter("frames in pool", self._in_flight)
            return index

        def collect(index: int) -> Indexed:
            assert self._supervisor is not None
            begin = trace.now()
            while index not in self._done:
                try:
                    self._supervisor.pump()
                except StageError as error:
                    earliest = self._earliest_failure(error, index)
                    raise earliest from earliest.__cause__  # its worker's traceback
            end = trace.now()
            self.wait_seconds += (end - begin) / 1e9
            trace.span("wait for pool", "wait", begin, end, frame=index)
            payload = self._done.pop(index)
            self._in_flight -= 1
            trace.counter("frames in pool", self._in_flight)
            return index, self._rings[1].frames[payload] if shm else payload

        return ordered_window(frames, submit, collect, self.window, start)
