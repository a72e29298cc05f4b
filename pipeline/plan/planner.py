"""Planning a job: the input probed, the tasks built, each task's pieces, what is resumed.

`plan()` reads and checks everything the options name (a layout file, the layout, an injected
fault, the stages) and probes the input before anything is written; `RunPlan` is what a layout
needs to run the job.
"""

from __future__ import annotations

import dataclasses
import pickle
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.options import RunOptions, apply_layout_file
from ..config.settings import usable_cores
from ..engine.helpers import SAVE_QUEUE_SIZE
from ..errors import ConfigError
from ..instrument import faults
from ..layouts import check_layout, layout_info, sends_stages
from ..media.probe import MediaInfo, probe
from ..report.results import TaskResult
from ..stages.base import Stage
from ..stages.files import FileModules, Unsendable
from .checkpoints import load_previous
from .identity import input_identity, job_key
from .outdir import OutDir, absolute
from .ownership import check_untouched
from .pieces import Pieces, piece_frames, plan_pieces, plan_segments
from .tasks import Task, plan_tasks

__all__ = ["RunPlan", "plan"]


@dataclass(frozen=True)
class RunPlan:
    """Everything a layout needs: the probed input, the tasks to run and the options.

    `pieces` says how each task's output is cut (and, resuming, which pieces are already
    done); `finished` holds the results of tasks an earlier run of the same job completed,
    which this run does not repeat (`--resume`). `source` is the input's identity and `jobs`
    each task's (`pipeline.plan.identity`), taken once, when planning: checkpoints record them.
    """

    media: MediaInfo
    tasks: tuple[Task, ...]
    options: RunOptions
    pieces: dict[str, Pieces]
    finished: dict[str, TaskResult] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    source: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        jobs = {t.name: job_key(t, self.source) for t in tasks}
        return dataclasses.replace(self, tasks=tasks, pieces=pieces, finished={}, jobs=jobs)

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
    if not task.frame_independent:
        return Pieces(tuple(plan_pieces(media, 0, options.out_dir, task.name)))
    if layout_info(options.layout).splits:
        workers = options.workers or usable_cores()
        return Pieces(tuple(plan_segments(media, workers, options.out_dir, task.name)))
    return Pieces(tuple(plan_pieces(media, options.segment_frames, options.out_dir, task.name)))


def _done_frames(pieces: Pieces) -> int:
    return sum(piece_frames(s) for s in pieces.segments if s.number in pieces.done)


def plan(source: Path | str, options: RunOptions) -> RunPlan:
    """Probe `source` and plan the tasks named in `options`; raises `InputError`/`ConfigError`.

    With `options.resume`, each task continues what an earlier run of the same job in the output
    directory left: a finished task is not run again, and an unfinished one keeps its finished
    pieces. A task with nothing to reuse starts from the beginning.
    """
    # Absolute once, before any user code runs: a stage may change the current folder.
    source = absolute(Path(source), "input")
    options = dataclasses.replace(options, out_dir=absolute(options.out_dir, "--out"))
    options = apply_layout_file(options)  # a layout file is read and checked here, once
    check_layout(options.layout)  # an unknown layout is reported before the input is read
    faults.configured()  # so is a malformed VIDPIPE_FAULT
    media = probe(source)
    identity = input_identity(Path(media.path))
    tasks, pieces, finished = [], {}, {}
    planned = plan_tasks(options, media)
    if sends_stages(options):
        _check_sendable(planned, options)
    jobs = {task.name: job_key(task, identity) for task in planned}
    for task in planned:
        job = jobs[task.name]
        previous = load_previous(task, job, media, options.out_dir) if options.resume else None
        if previous and previous.result:
            finished[task.name] = previous.result
            continue
        tasks.append(task)
        pieces[task.name] = (previous and previous.pieces) or _fresh_pieces(media, task, options)
    if finished and not tasks:  # nothing to do: but a folder a run refuses is refused here too
        check_untouched(options.out_dir)
    return RunPlan(media, tuple(tasks), options, pieces, finished, source=identity, jobs=jobs)


def _check_sendable(tasks: tuple[Task, ...], options: RunOptions) -> None:
    """Refuse a stage that cannot travel to a worker process, naming it and why: each is
    pickled and unpickled here as a worker would unpickle it (`FileModules.as_in_a_new_process`),
    so that what passes here cannot fail there."""
    for task in tasks:
        for stage in task.stages:
            try:
                sent = pickle.dumps(stage)
                with FileModules.as_in_a_new_process():
                    pickle.loads(sent)
            except Exception as exc:
                raise ConfigError(_unsendable(task, stage, options, exc)) from exc


def _unsendable(task: Task, stage: Stage, options: RunOptions, exc: Exception) -> str:
    where = f"task '{task.name}': stage '{stage.name}' cannot be sent to a worker process"
    instead = "or run it under --layout serial or threads, or --start-method fork"
    if isinstance(exc, Unsendable):  # it says why, and what to write instead
        return f"{where} under --layout {options.layout}: {exc} ({instead})"
    return (
        f"{where} under --layout {options.layout} ({type(exc).__name__}: {exc}): a stage "
        f"holds only plain configuration until setup(); {instead}"
    )
