"""A job: an input, the tasks planned for it and the options; `run()` carries one out."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import faults, trace
from .config import RunOptions
from .environment import collect_environment, configure_process, usable_cores
from .errors import ConfigError
from .media.probe import MediaInfo, probe
from .media.sink import partial_path
from .report import RunReport, TaskResult, self_stats
from .reporters import NullReporter, Reporter
from .runner import checkpoint_path
from .shm import ring_name, sweep
from .tasks import Task, plan_tasks

__all__ = ["RunPlan", "build_report", "execute", "plan", "run"]


@dataclass(frozen=True)
class RunPlan:
    """Everything a layout needs: the probed input, the planned tasks and the options."""

    media: MediaInfo
    tasks: tuple[Task, ...]
    options: RunOptions
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def out_dir(self) -> Path:
        return self.options.out_dir

    @property
    def trace_dir(self) -> Path | None:
        """Where processes leave their trace events, or None when not tracing."""
        return trace.trace_dir(self.out_dir) if self.options.trace else None

    @property
    def workers(self) -> int:
        """Pool size and segment count: `--workers`, or the usable cores."""
        return self.options.workers or usable_cores()


def build_report(plan: RunPlan, started: float, results: dict[str, TaskResult]) -> RunReport:
    """The report of a finished run; `started` is its `time.perf_counter()` at the start."""
    ordered = {task.name: results[task.name] for task in plan.tasks}
    return RunReport(
        layout=plan.options.layout,
        wall_seconds=round(time.perf_counter() - started, 4),
        input=plan.media.to_dict(),
        tasks=ordered,
        processes=[self_stats("main"), *(p for r in ordered.values() for p in r.processes)],
        environment=collect_environment(plan.options),
    )


def _prepare_out_dir(plan: RunPlan) -> None:
    out = plan.out_dir
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create it ({exc.strerror})") from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: directory is not writable")
    # A fresh run replaces what an earlier run left, so nothing stale passes for its output.
    (out / "report.json").unlink(missing_ok=True)
    (out / "trace.json").unlink(missing_ok=True)
    for task in plan.tasks:
        (out / task.output).unlink(missing_ok=True)
        checkpoint_path(out, task.name).unlink(missing_ok=True)
        shutil.rmtree(out / "thumbnails" / task.name, ignore_errors=True)


def _remove_leftovers(plan: RunPlan) -> None:
    """Remove what a failed run's killed workers could not: partial outputs, shared memory."""
    for task in plan.tasks:
        partial_path(plan.out_dir / task.output).unlink(missing_ok=True)
        sweep([ring_name(plan.run_id, task.name, side) for side in ("in", "out")])


def plan(source: Path | str, options: RunOptions) -> RunPlan:
    """Probe `source` and plan the tasks named in `options`; raises `InputError`/`ConfigError`."""
    from .layouts import load_layout

    load_layout(options.layout)  # an unknown layout is reported before the input is read
    faults.configured()  # so is a malformed VIDPIPE_FAULT
    media = probe(source)
    return RunPlan(media, plan_tasks(options, media), options)


def execute(plan: RunPlan, reporter: Reporter | None = None) -> RunReport:
    """Carry out `plan` with its layout; write `report.json` and return the report.

    Outputs appear at their final paths only when complete; on failure or interruption no
    partial file is left. Raises `PipelineError` subclasses when processing fails.
    """
    from .layouts import load_layout

    layout = load_layout(plan.options.layout)
    _prepare_out_dir(plan)
    configure_process(plan.options)
    try:
        with trace.session("main", plan.trace_dir):
            report = layout.run(plan, reporter or NullReporter())
        if plan.trace_dir is not None:
            trace.merge(plan.trace_dir, plan.out_dir / "trace.json")
    except BaseException:
        _remove_leftovers(plan)
        raise
    finally:
        if plan.trace_dir is not None:
            shutil.rmtree(plan.trace_dir, ignore_errors=True)
    report.write(plan.out_dir / "report.json")
    return report


def run(source: Path | str, options: RunOptions, reporter: Reporter | None = None) -> RunReport:
    """Process `source` with the tasks and layout of `options`: `execute(plan(...))`.

    Raises `InputError` / `ConfigError` before anything is written when the input or options are
    unusable, and other `PipelineError` subclasses when processing fails.
    """
    return execute(plan(source, options), reporter)
