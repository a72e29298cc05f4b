"""`segments`: each task's input split into contiguous frame ranges, one worker process each.

Every worker seeks to its range's first keyframe, decodes its frames, runs the task's stages
(with the frames' indices in the whole video) and encodes its own piece. At most `--workers`
run at once, across tasks. The parent aggregates progress, checkpoints each finished piece, and
joins a task's pieces without re-encoding (ffmpeg concat, stream copy), adding the audio. The
digest of the joined task combines the pieces' per-frame digests, in order: it equals the serial
run's when the frames do.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import shutil
import threading
import time
from functools import partial
from pathlib import Path

from ..framemap import InlineMapper
from ..helpers import ThreadSaver
from ..job import RunPlan, build_report
from ..media.sink import join_pieces
from ..report import RunReport, TaskResult, WorkerStats
from ..reporters import Reporter
from ..runner import FrameDigest, checkpoint_path, checkpoint_state
from ..saves import thumbnail_path, write_checkpoint
from ..segments import Segment, plan_segments
from ..supervisor import Supervisor
from ..tasks import Task
from .processes import task_worker, worker_context

__all__ = ["run"]


class _TaskProgress:
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


def _checkpoint(
    task: Task,
    segments: list[Segment],
    done: dict[int, TaskResult],
    complete: bool,
    save_every: int,
) -> dict[str, object]:
    pieces = [done[n] for n in sorted(done)]
    # The newest thumbnail written: the last multiple of save_every inside a finished segment.
    written = [
        last - last % save_every
        for s in segments
        if s.number in done
        and (last := s.first_frame + done[s.number].frames - 1) - last % save_every >= s.first_frame
    ]
    latest = thumbnail_path(Path(), task.name, max(written)).name if written else None
    state = checkpoint_state(
        task, sum(p.frames for p in pieces), sum(p.thumbnails for p in pieces), latest, complete
    )
    return {**state, "segments_done": sorted(done)}


def _join(
    plan: RunPlan, task: Task, segments: list[Segment], done: dict[int, TaskResult], started: float
) -> TaskResult:
    pieces = [done[s.number] for s in segments]
    output = plan.out_dir / task.output
    stats = join_pieces(
        [s.piece for s in segments],
        output,
        audio_from=Path(plan.media.path) if task.keep_audio else None,
        audio_codec=plan.media.audio_codec,
        label=task.name,
    )
    first = pieces[0]
    return dataclasses.replace(
        first,
        frames=sum(p.frames for p in pieces),
        seconds=time.perf_counter() - started,
        output=task.output,
        frame_digest=FrameDigest.combine([p.frame_digests for p in pieces]),
        pid=os.getpid(),
        threads=sorted({t for p in pieces for t in p.threads}),
        output_bytes=output.stat().st_size,
        audio=plan.media.audio_codec if task.keep_audio else None,
        thumbnails=sum(p.thumbnails for p in pieces),
        processes=[proc for p in pieces for proc in p.processes] + ([stats] if stats else []),
        workers=[
            WorkerStats(f"segment-{s.number}", p.pid, p.frames, busy_seconds=p.seconds)
            for s, p in zip(segments, pieces, strict=True)
        ],
        timings={
            phase: sum(p.timings.get(phase, 0.0) for p in pieces)
            for phase in dict.fromkeys(k for p in pieces for k in p.timings)
        },
        frame_digests=b"",
    )


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    started = time.perf_counter()
    segments = {
        t.name: plan_segments(plan.media, plan.workers, plan.out_dir, t.name) for t in plan.tasks
    }
    # Interleave the tasks' segments so both make progress from the start.
    queue = collections.deque(
        (task, seg)
        for n in range(max(map(len, segments.values())))
        for task in plan.tasks
        if n < len(segments[task.name])
        for seg in [segments[task.name][n]]
    )
    progress = {t.name: _TaskProgress(reporter, t.name) for t in plan.tasks}
    done: dict[str, dict[int, TaskResult]] = {t.name: {} for t in plan.tasks}
    results: dict[str, TaskResult] = {}
    saver = ThreadSaver()
    saver.start()
    try:
        with Supervisor(worker_context(plan.options.start_method), reporter) as supervisor:

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
                    reporter=progress[task.name].for_segment(seg.number),
                )

            for task in plan.tasks:
                reporter.task_started(task.name, plan.media.packets)
            while queue and supervisor.running < plan.workers:
                start_next()
            while supervisor.running:
                for name in supervisor.pump():
                    task_name, number = name.split("/")
                    task = next(t for t in plan.tasks if t.name == task_name)
                    done[task_name][int(number)] = supervisor.result(name)
                    complete = len(done[task_name]) == len(segments[task_name])
                    if complete:
                        result = _join(plan, task, segments[task_name], done[task_name], started)
                        results[task_name] = result
                        reporter.task_finished(task_name, result)
                    saver.submit(
                        partial(
                            write_checkpoint,
                            checkpoint_path(plan.out_dir, task_name),
                            _checkpoint(
                                task,
                                segments[task_name],
                                done[task_name],
                                complete,
                                plan.options.save_every,
                            ),
                        )
                    )
                    if queue:
                        start_next()
        saver.flush()
    finally:
        saver.close()
        shutil.rmtree(plan.out_dir / ".pieces", ignore_errors=True)
    return build_report(plan, started, results)
