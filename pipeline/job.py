"""A job: an input, the tasks planned for it and the options; `run()` carries one out."""

from __future__ import annotations

import dataclasses
import pickle
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import faults, ownership, trace
from .checkpoints import load_previous, read_state
from .config import RunOptions, usable_cores
from .environment import collect_environment, configure_process
from .errors import ConfigError
from .helpers import SAVE_QUEUE_SIZE
from .media.probe import MediaInfo, probe
from .outdir import THUMBNAILS, OutDir, temp_files
from .report import RunReport, TaskResult, self_stats
from .reporters import NullReporter, Reporter
from .segments import (
    Pieces,
    cut_segments,
    digests_path,
    piece_frames,
    plan_pieces,
    plan_segments,
    remove_pieces,
)
from .shm import ring_name, sweep
from .tasks import Task, plan_tasks
from .watchdog import Watchdog

__all__ = ["RunPlan", "build_report", "execute", "plan", "run"]


@dataclass(frozen=True)
class RunPlan:
    """Everything a layout needs: the probed input, the tasks to run and the options.

    `pieces` says how each task's output is cut (and, resuming, which pieces are already
    done); `finished` holds the results of tasks an earlier run of the same job completed,
    which this run does not repeat (`--resume`).
    """

    media: MediaInfo
    tasks: tuple[Task, ...]
    options: RunOptions
    pieces: dict[str, Pieces]
    finished: dict[str, TaskResult] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def out_dir(self) -> Path:
        return self.options.out_dir

    @property
    def out(self) -> OutDir:
        """The paths of the output folder."""
        return OutDir(self.options.out_dir)

    @property
    def trace_dir(self) -> Path | None:
        """Where processes leave their trace events, or None when not tracing."""
        return self.out.trace_parts if self.options.trace else None

    @property
    def workers(self) -> int:
        """Pool size and segment count: `--workers`, or the usable cores."""
        return self.options.workers or usable_cores()

    @property
    def save_queue(self) -> int:
        """Saves that may wait for a process's saver thread: the layout file's, or 8."""
        layout = self.options.layout_file
        return (layout and layout.save_queue) or SAVE_QUEUE_SIZE

    def with_tasks(self, *tasks: Task) -> RunPlan:
        """This plan with other tasks (such as ones with stages of your own), started afresh."""
        pieces = {t.name: _fresh_pieces(self.media, t, self.options) for t in tasks}
        return dataclasses.replace(self, tasks=tasks, pieces=pieces, finished={})

    @property
    def resumed_frames(self) -> int:
        """Frames this run takes over from an earlier one instead of processing them."""
        return sum(r.frames for r in self.finished.values()) + sum(
            _done_frames(p) for p in self.pieces.values()
        )


def _fresh_pieces(media: MediaInfo, task: Task, options: RunOptions) -> Pieces:
    """How `task` is cut when nothing is resumed: into `--workers` segments for a layout that
    runs them side by side, else into pieces of `--segment-frames`. A task with a stage that
    carries state from frame to frame is one piece: each piece would start that state afresh."""
    from .layouts import layout_info

    if not task.frame_independent:
        return Pieces(tuple(plan_pieces(media, 0, options.out_dir, task.name)))
    if layout_info(options.layout).splits:
        workers = options.workers or usable_cores()
        return Pieces(tuple(plan_segments(media, workers, options.out_dir, task.name)))
    return Pieces(tuple(plan_pieces(media, options.segment_frames, options.out_dir, task.name)))


def _done_frames(pieces: Pieces) -> int:
    return sum(piece_frames(s) for s in pieces.segments if s.number in pieces.done)


def build_report(plan: RunPlan, started: float, results: dict[str, TaskResult]) -> RunReport:
    """The report of a finished run; `started` is its `time.perf_counter()` at the start."""
    results = {**plan.finished, **results}
    order = list(plan.options.tasks)
    ordered = {
        name: results[name]
        for name in sorted(results, key=lambda n: order.index(n) if n in order else len(order))
    }
    return RunReport(
        layout=plan.options.layout,
        wall_seconds=round(time.perf_counter() - started, 4),
        input=plan.media.to_dict(),
        tasks=ordered,
        processes=[self_stats("main"), *(p for r in ordered.values() for p in r.processes)],
        environment=collect_environment(plan.options),
    )


def _claim(plan: RunPlan) -> ownership.Claim:
    """What the run writes in its output folder, and what it starts afresh.

    A fresh task replaces what an earlier run left, so that nothing stale passes for its
    output; a resumed one keeps its checkpoint, thumbnails and finished pieces. A report or
    trace of an earlier run goes too: it described that run.
    """
    out = plan.out
    files = [out.report, *([out.trace] if plan.options.trace else [])]
    patterns = []
    fresh = [out.report, out.trace]
    for task in plan.tasks:
        files += [out.output(task.output), out.checkpoint(task.name)]
        patterns.append((out.thumbnails(task.name), THUMBNAILS))
        if not plan.pieces[task.name].done:
            fresh += [out.output(task.output), out.checkpoint(task.name)]
            fresh += [out.thumbnails(task.name), out.pieces(task.name)]
    return ownership.Claim(
        files=tuple(files),
        patterns=tuple(patterns),
        fresh=tuple(fresh),
        forbidden=tuple(out.thumbnails(name) for name in plan.options.tasks),
    )


def _recorded_pieces(plan: RunPlan, task: Task) -> set[str]:
    """The file names of the pieces the task's checkpoint records as finished."""
    try:
        state = read_state(plan.out.checkpoint(task.name)) or {}
    except ConfigError:
        return set()
    if state.get("complete"):
        return set()  # joined: its pieces are no longer needed
    done = state.get("segments_done", [])
    # The checkpoint's own segment plan: a layout may cut otherwise than the run's plan said
    # (`ray` spreads a task over a joined cluster's CPUs).
    starts = [first for first, _frames in state.get("segments", [])]
    segments = cut_segments(plan.media, starts, plan.out_dir, task.name) if starts else []
    return {
        path.name
        for n in done
        if 0 <= n < len(segments)
        for path in (segments[n].piece, digests_path(segments[n]))
    }


def _remove_leftovers(plan: RunPlan) -> None:
    """Remove what a failed run's killed workers could not: partial outputs, temp files,
    unrecorded pieces, shared memory. Recorded pieces stay, for `--resume`. Only vidpipe's
    temporary files are touched: they carry its name (`pipeline.outdir`)."""
    # A worker killed mid-save leaves its temp file: beside the checkpoints, or a thumbnail's;
    # one killed mid-encode leaves its partial output.
    folders = [plan.out_dir, *(plan.out.thumbnails(t.name) for t in plan.tasks)]
    for leftover in (path for folder in folders for path in temp_files(folder)):
        leftover.unlink(missing_ok=True)
    for task in plan.tasks:
        sweep([ring_name(plan.run_id, task.name, side) for side in ("in", "out")])
        folder = plan.out.pieces(task.name)
        if folder.is_dir():
            keep = _recorded_pieces(plan, task)
            for path in folder.iterdir():
                if path.name not in keep:
                    path.unlink(missing_ok=True)
            if not keep:
                remove_pieces(plan.out_dir, task.name)


def plan(source: Path | str, options: RunOptions) -> RunPlan:
    """Probe `source` and plan the tasks named in `options`; raises `InputError`/`ConfigError`.

    With `options.resume`, each task continues what an earlier run of the same job in the output
    directory left: a finished task is not run again, and an unfinished one keeps its finished
    pieces. A task with nothing to reuse starts from the beginning.
    """
    from .layout_file import apply_layout_file
    from .layouts import load_layout, sends_stages

    options = apply_layout_file(options)  # a layout file is read and checked here, once
    load_layout(options.layout)  # an unknown layout is reported before the input is read
    faults.configured()  # so is a malformed VIDPIPE_FAULT
    media = probe(source)
    tasks, pieces, finished = [], {}, {}
    planned = plan_tasks(options, media)
    if sends_stages(options):
        _check_sendable(planned, options)
    for task in planned:
        previous = load_previous(task, media, options.out_dir) if options.resume else None
        if previous and previous.result:
            finished[task.name] = previous.result
            continue
        tasks.append(task)
        pieces[task.name] = (previous and previous.pieces) or _fresh_pieces(media, task, options)
    return RunPlan(media, tuple(tasks), options, pieces, finished)


def _check_sendable(tasks: tuple[Task, ...], options: RunOptions) -> None:
    """Refuse a stage that cannot travel to a worker process (pickled), naming it and why."""
    for task in tasks:
        for stage in task.stages:
            try:
                pickle.dumps(stage)
            except Exception as exc:
                raise ConfigError(
                    f"task '{task.name}': stage '{stage.name}' cannot be sent to a worker "
                    f"process under --layout {options.layout} ({type(exc).__name__}: {exc}): "
                    "a stage holds only plain configuration until setup(); or run it under "
                    "--layout serial or threads, or --start-method fork"
                ) from exc


def execute(plan: RunPlan, reporter: Reporter | None = None) -> RunReport:
    """Carry out `plan` with its layout; write `report.json` and return the report.

    Outputs appear at their final paths only when complete; on failure or interruption no
    partial file is left. Only what vidpipe wrote in the output folder is removed or replaced
    (`pipeline.outdir`): a file there that it did not write raises `OutputConflict` before
    anything is touched, unless `options.force`; another run holding the folder raises
    `FolderInUse`; an input lying where the run writes raises `ConfigError`. Raises
    `PipelineError` subclasses when processing fails.
    """
    from .layouts import load_layout

    layout = load_layout(plan.options.layout)
    if not plan.tasks:  # resuming a finished job: nothing to do, nothing to touch
        return build_report(plan, time.perf_counter(), {})
    force = plan.options.force
    with ownership.hold(plan.out_dir, _claim(plan), source=Path(plan.media.path), force=force):
        configure_process(plan.options)
        watchdog = Watchdog(reporter or NullReporter(), plan.options.stall_timeout)
        try:
            with trace.session("main", plan.trace_dir), watchdog.armed():
                report = layout.run(plan, watchdog)
            if plan.trace_dir is not None:
                trace.merge(plan.trace_dir, plan.out.trace)
        except BaseException:
            _remove_leftovers(plan)
            raise
        finally:
            if plan.trace_dir is not None:
                shutil.rmtree(plan.trace_dir, ignore_errors=True)
        for name in plan.options.tasks:
            remove_pieces(plan.out_dir, name)  # joined: no longer needed for --resume
        report.write(plan.out.report)
    return report


def run(source: Path | str, options: RunOptions, reporter: Reporter | None = None) -> RunReport:
    """Process `source` with the tasks and layout of `options`: `execute(plan(...))`.

    Raises `InputError` / `ConfigError` before anything is written when the input or options are
    unusable, and other `PipelineError` subclasses when processing fails.
    """
    return execute(plan(source, options), reporter)
