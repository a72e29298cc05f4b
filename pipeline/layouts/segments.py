"""`segments`: each task's input split into contiguous frame ranges, one worker process each.

Every worker seeks to its range's first keyframe, decodes its frames, runs the task's stages
(with the frames' indices in the whole video) and encodes its own piece. At most `--workers`
run at once, across tasks. The parent aggregates progress, checkpoints each finished piece, and
joins a task's pieces without re-encoding (ffmpeg concat, stream copy), adding the audio. The
digest of the joined task combines the pieces' per-frame digests, in order: it equals the serial
run's when the frames do. Resuming, only the pieces an earlier run did not finish are run.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import threading
import time
from functools import partial
from pathlib import Path
from typing import TypeVar

from ..engine.digest import FrameDigest
from ..engine.framemap import InlineMapper
from ..engine.helpers import ThreadSaver
from ..engine.saves import write_checkpoint
from ..engine.supervisor import Supervisor
from ..errors import MediaError
from ..media.sink import join_pieces
from ..plan.checkpoints import checkpoint_state, thumbnails_in
from ..plan.identity import input_changed
from ..plan.outdir import thumbnail_name
from ..plan.pieces import Pieces, Segment, piece_frames, read_digests
from ..plan.planner import RunPlan
from ..plan.tasks import Task
from ..report.build import build_report
from ..report.reporters import Reporter
from ..report.results import CpuBreakdown, RunReport, TaskResult, WorkerStats
from .processes import task_worker, worker_context

__all__ = ["SegmentProgress", "SegmentedRun", "join_segments", "run", "segments_checkpoint"]


class SegmentProgress:
    """Sums the frames done by a task's segments into one running total for the reporter."""

    def __init__(self, reporter: Reporter, task: str) -> None:
        self._reporter = reporter
        self._task = task
        self._done: dict[int, int] = {}
        self._lock = threading.Lock()

    def for_segment(self, number: int) -> Reporter:
        progress = self

        class _Segment:
            def task_started(self, task: str, total_frames: int) -> None:
                pass

            def frames_done(self, task: str, frames: int) -> None:
                progress.update(number, frames)

            def task_finished(self, task: str, result: TaskResult) -> None:
                progress.update(number, result.frames)

        return _Segment()

    def update(self, number: int, frames: int) -> None:
        with self._lock:
            self._done[number] = frames
            total = sum(self._done.values())
        self._reporter.frames_done(self._task, total)


def segments_checkpoint(
    plan: RunPlan, task: Task, pieces: Pieces, result: TaskResult | None
) -> dict[str, object]:
    """The checkpoint of a task whose segments run side by side: the pieces done so far."""
    finished = [s for s in pieces.segments if s.number in pieces.done]
    thumbs = [
        i
        for s in finished
        for i in thumbnails_in(s.first_frame, piece_frames(s), plan.options.save_every)
    ]
    return checkpoint_state(
        task,
        plan.jobs[task.name],
        frames=sum(piece_frames(s) for s in finished),
        thumbnails=len(thumbs),
        latest=thumbnail_name(max(thumbs)) if thumbs else None,
        pieces=pieces,
        result=result,
    )


K = TypeVar("K")
V = TypeVar("V", float, CpuBreakdown)


def _summed(parts: list[dict[K, V]]) -> dict[K, V]:
    """Each key's values added up over `parts` (keys in the order first seen)."""
    total: dict[K, V] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total[key] + value if key in total else value
    return total


def join_segments(
    plan: RunPlan, task: Task, pieces: Pieces, done: dict[int, TaskResult], started: float
) -> TaskResult:
    """The task's result, once all its pieces are finished: they are joined, with the audio."""
    segments = pieces.segments
    output = plan.out_dir / task.output
    try:
        stats = join_pieces(
            [s.piece for s in segments],
            output,
            starts=[plan.media.frame_time(s.first_frame) for s in segments],
            audio_from=Path(plan.media.path) if task.keep_audio else None,
            audio_codec=plan.media.audio_codec,
            label=task.name,
        )
    except MediaError as exc:  # the audio comes from the input: the user's, if it is gone
        raise input_changed(task.name, plan.media.path, plan.source) or exc from exc
    ran = [done[s.number] for s in segments if s.number in done]  # by this run, not resumed
    frames = [piece_frames(s) for s in segments]
    save_every = plan.options.save_every
    why = task.in_order_because if len(segments) == 1 and plan.workers > 1 else None
    return dataclasses.replace(
        ran[0],
        in_order=f"ran in one piece, not in {plan.workers} segments: {why}" if why else None,
        frames=sum(frames),
        seconds=time.perf_counter() - started,
        output=task.output,
        frame_digest=FrameDigest.combine([read_digests(s) for s in segments]),
        pid=os.getpid(),
        threads=sorted({t for p in ran for t in p.threads}),
        output_bytes=output.stat().st_size,
        audio=plan.media.audio_codec if task.keep_audio else None,
        thumbnails=sum(
            len(thumbnails_in(s.first_frame, n, save_every))
            for s, n in zip(segments, frames, strict=True)
        ),
        processes=[proc for p in ran for proc in p.processes] + ([stats] if stats else []),
        workers=[
            WorkerStats(
                f"segment-{s.number}",
                done[s.number].pid,
                done[s.number].frames,
                busy_seconds=done[s.number].seconds,
            )
            for s in segments
            if s.number in done
        ],
        phase_seconds=_summed([p.phase_seconds for p in ran]),
        stage_seconds=_summed([p.stage_seconds for p in ran]),
        cpu_breakdown=_summed([p.cpu_breakdown for p in ran]),
        resumed_frames=sum(
            n for s, n in zip(segments, frames, strict=True) if s.number not in done
        ),
    )


class SegmentedRun:
    """The parent's side of a run whose tasks are cut into segments that run side by side: the
    segments to run, progress summed per task, each finished piece checkpointed by a saver
    thread, and a task's pieces joined once all are in. Shared by `segments` and `ray`, which
    differ only in where a segment runs.

    Use as a context manager: the saver starts on entry, and on exit is flushed (raising a
    failed save) and stopped.
    """

    def __init__(
        self, plan: RunPlan, reporter: Reporter, started: float, pieces: dict[str, Pieces]
    ) -> None:
        self.plan = plan
        self.reporter = reporter
        self.started = started
        self.pieces = dict(pieces)
        self.progress = {t.name: SegmentProgress(reporter, t.name) for t in plan.tasks}
        self.results: dict[str, TaskResult] = {}
        self._tasks = {t.name: t for t in plan.tasks}
        self._done: dict[str, dict[int, TaskResult]] = {t.name: {} for t in plan.tasks}
        self._saver = ThreadSaver()

    def __enter__(self) -> SegmentedRun:
        self._saver.start()
        for task in self.plan.tasks:
            self.reporter.task_started(task.name, self.plan.media.packets)
            for seg in self.pieces[task.name].segments:
                if seg.number in self.pieces[task.name].done:
                    self.progress[task.name].update(seg.number, piece_frames(seg))
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc is None:
                self._saver.flush()
        finally:
            self._saver.close()

    def pending(self) -> list[tuple[Task, Segment]]:
        """The segments still to run, the tasks' interleaved so that both progress at once."""
        pending = {t.name: self.pieces[t.name].pending for t in self.plan.tasks}
        return [
            (task, pending[task.name][n])
            for n in range(max(map(len, pending.values())))
            for task in self.plan.tasks
            if n < len(pending[task.name])
        ]

    def finished(self, task_name: str, number: int, result: TaskResult) -> None:
        """Segment `number` of the task is done: record it and checkpoint it, and once it was
        the task's last, join the pieces and report the task finished."""
        task = self._tasks[task_name]
        self._done[task_name][number] = result
        now = self.pieces[task_name] = dataclasses.replace(
            self.pieces[task_name], done=self.pieces[task_name].done | {number}
        )
        self.progress[task_name].update(number, result.frames)
        joined = None
        if not now.pending:
            joined = join_segments(self.plan, task, now, self._done[task_name], self.started)
            self.results[task_name] = joined
            self.reporter.task_finished(task_name, joined)
        state = segments_checkpoint(self.plan, task, now, joined)
        path = self.plan.out.checkpoint(task_name)
        self._saver.submit_latest(path, partial(write_checkpoint, path, state))

    def report(self) -> RunReport:
        return build_report(self.plan, self.started, self.results)


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    with (
        SegmentedRun(plan, reporter, time.perf_counter(), plan.pieces) as segmented,
        Supervisor(worker_context(plan.options.start_method), reporter) as supervisor,
    ):
        queue = collections.deque(segmented.pending())

        def start_next() -> None:
            task, seg = queue.popleft()
            supervisor.start(
                f"{task.name}/{seg.number}",
                task_worker,
                task,
                plan,
                InlineMapper,
                seg,
                task=task.name,
                role=f"segment {seg.number} worker",
                reporter=segmented.progress[task.name].for_segment(seg.number),
            )

        while queue and supervisor.running < plan.workers:
            start_next()
        while supervisor.running:
            for name in supervisor.pump():
                task_name, number = name.split("/")
                segmented.finished(task_name, int(number), supervisor.result(name))
                if queue:
                    start_next()
    return segmented.report()
