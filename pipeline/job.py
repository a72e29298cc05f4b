"""Carrying out a job: `run()` an input with options, or `execute()` a plan.

The entry points of the library. A job is planned (`pipeline.plan.planner.plan`), then executed: its
output folder held (`pipeline.plan.ownership`), its layout run under the stall watchdog, what a
failed run leaves removed, and its report written.
"""

from __future__ import annotations

import time
from pathlib import Path

from .config.options import RunOptions
from .engine import leftovers
from .engine.watchdog import Watchdog
from .errors import ConfigError
from .instrument import trace
from .instrument.cpusampler import CpuSampler
from .layouts import load_layout
from .layouts.base import Layout
from .plan import ownership
from .plan.checkpoints import read_state
from .plan.outdir import PIECE_NAMES, THUMBNAILS, TRACE_NAMES, remove_own_files, temp_files
from .plan.pieces import cut_segments, digests_path, remove_pieces
from .plan.planner import RunPlan, plan
from .plan.tasks import Task
from .report.reporters import NullReporter, Reporter
from .report.results import RunReport

__all__ = ["execute", "plan", "run"]


def _claim(plan: RunPlan) -> ownership.Claim:
    """What the run writes in its output folder, and what it starts afresh.

    A fresh task replaces what an earlier run left, so that nothing stale passes for its
    output; a resumed one keeps its checkpoint, thumbnails and finished pieces. A report or
    trace of an earlier run goes too: it described that run.
    """
    out = plan.out
    files = [out.report, *([out.trace] if plan.options.trace else [])]
    patterns = []
    # A killed traced run's parts too: they would be merged into this run's trace.
    fresh = [out.report, out.trace, out.trace_parts]
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


def _remove_temp_files(plan: RunPlan) -> None:
    """Remove vidpipe's temporary files and partial outputs from the folder and this run's
    thumbnail folders. A worker killed mid-save leaves its temp file: beside the checkpoints,
    or a thumbnail's; one killed mid-encode leaves its partial output."""
    folders = [plan.out_dir, *(plan.out.thumbnails(t.name) for t in plan.tasks)]
    for leftover in (path for folder in folders for path in temp_files(folder)):
        leftover.unlink(missing_ok=True)


def _remove_leftovers(plan: RunPlan) -> None:
    """Remove what a failed run's killed workers could not: partial outputs, temp files,
    unrecorded pieces, shared memory. Recorded pieces stay, for `--resume`. Only vidpipe's
    temporary files are touched: they carry its name (`pipeline.plan.outdir`)."""
    from .engine.shm import ring_name, sweep

    _remove_temp_files(plan)
    for task in plan.tasks:
        sweep([ring_name(plan.run_id, task.name, side) for side in ("in", "out")])
        folder = plan.out.pieces(task.name)
        if folder.is_dir():
            keep = _recorded_pieces(plan, task)
            for path in folder.iterdir():  # only vidpipe's pieces: the rest is someone's
                ours = PIECE_NAMES.fullmatch(path.name) and not path.is_dir()
                if ours and path.name not in keep:
                    path.unlink(missing_ok=True)
            if not keep:
                remove_pieces(plan.out_dir, task.name)


def execute(plan: RunPlan, reporter: Reporter | None = None) -> RunReport:
    """Carry out `plan` with its layout; write `report.json` and return the report.

    Outputs appear at their final paths only when complete; on failure or interruption no
    partial file is left. Only what vidpipe wrote in the output folder is removed or replaced
    (`pipeline.plan.outdir`): a file there that it did not write raises `OutputConflict` before
    anything is touched, unless `options.force`; another run holding the folder raises
    `FolderInUse`; an input lying where the run writes raises `ConfigError`. Raises
    `PipelineError` subclasses when processing fails.

    What a stage leaves running after its `teardown()` is the run's business too
    (`pipeline.engine.leftovers`): its child processes are killed when the run ends, whether
    it succeeded or not, and a warning line on stderr names them, and the threads it left
    (which a program using the library then has to stop; `vidpipe` exits without them).
    """
    # Imported here, not at the top: planning (and probing the input, the first ffmpeg a run
    # starts) needs neither numpy nor OpenCV, which these bring.
    from .report.build import build_report
    from .report.environment import configure_process

    layout: Layout = load_layout(plan.options.layout)
    if not plan.tasks:  # resuming a finished job: nothing to do, nothing to touch
        return build_report(plan, time.perf_counter(), {})
    force = plan.options.force
    claim, source = _claim(plan), Path(plan.media.path)
    with ownership.hold(plan.out_dir, claim, source=source, force=force, heartbeat=False) as held:
        # What a run that ended without cleaning up left (killed, or a stage's os._exit):
        # only a run holding the folder writes such files, and this one has not begun.
        _remove_temp_files(plan)
        configure_process(plan.options)
        watchdog = Watchdog(reporter or NullReporter(), plan.options.stall_timeout, held.beat)
        try:
            with trace.session("main", plan.trace_dir), watchdog.armed(), CpuSampler():
                report = layout.run(plan, watchdog)
            if plan.trace_dir is not None:
                trace.merge(plan.trace_dir, plan.out.trace)
        except BaseException:
            _remove_leftovers(plan)
            raise
        finally:
            # What a stage left running: its children killed, all of it named.
            leftovers.warn(leftovers.settle())
            if plan.trace_dir is not None:
                remove_own_files(plan.trace_dir, TRACE_NAMES)
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
