"""`vidpipe predict`: what each layout will gain on N cores, from one serial run.

The serial run is measured (`measure_serial`, in a temporary folder) or read (`read_serial`,
a report.json); the model (`pipeline.lab.model`) does the rest with the ingredients measured
on this machine (`pipeline.lab.ingredients`). `compare --predict` puts the same figures beside
the measured ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.options import RunOptions
from ..config.settings import usable_cores
from ..errors import ConfigError, InputError
from ..plan.identity import changed
from ..plan.outdir import read_regular
from ..plan.planner import RunPlan
from ..plan.planner import plan as plan_job
from ..plan.tasks import Task
from ..report.results import RunReport
from .ingredients import machine, shape_for, task_work
from .model import LAYOUTS, Machine, TaskWork, perfect, predict, shape_of

__all__ = [
    "Forecast",
    "Row",
    "default_cores",
    "forecast",
    "forecast_table",
    "measure_serial",
    "read_serial",
    "reforecast",
]


@dataclass(frozen=True)
class Row:
    """One layout's prediction on one core count."""

    layout: str
    cores: int
    wall_seconds: float
    speedup: float
    limit: str
    why: str
    #: False for a core count this machine does not have.
    this_machine: bool


@dataclass(frozen=True)
class Forecast:
    """Every layout's predictions, and what they were made from."""

    serial_wall_seconds: float
    usable_cores: int
    startup_seconds: float
    copy_ns_per_mb: float
    tasks: list[TaskWork]
    #: x264 on one thread (as `compare` pins it), and `--workers` (None: the cores).
    single_thread_encoder: bool = True
    workers: int | None = None
    rows: list[Row] = field(default_factory=list)
    #: A perfect layout's speedup over serial on each core count, and what bounds it.
    perfect: list[Row] = field(default_factory=list)

    def row(self, layout: str, cores: int) -> Row | None:
        """The prediction for `layout` on `cores` cores, if made."""
        return next((r for r in self.rows if (r.layout, r.cores) == (layout, cores)), None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_cores() -> tuple[int, ...]:
    """This machine's usable cores, then 4, 8 and 16."""
    return tuple(sorted({usable_cores(), 4, 8, 16}))


def measure_serial(source: Path, options: RunOptions) -> dict[str, Any]:
    """The report of a serial run of the job, made in a temporary folder removed afterwards
    (also when the run fails or is interrupted)."""
    from ..job import execute

    with tempfile.TemporaryDirectory(prefix="vidpipe-predict-") as folder:
        options = dataclasses.replace(
            options, out_dir=Path(folder), layout="serial", trace=False, resume=False
        )
        report: dict[str, Any] = execute(plan_job(source, options)).to_dict()
    return report


def read_serial(folder: Path, job: RunPlan) -> dict[str, Any]:
    """The report.json of a finished serial run of `job` in `folder`; refused (exit 2) when
    it is missing, not a regular file (a FIFO would block for ever), not a vidpipe report
    (checked once against `RunReport`'s fields, whatever its shape), not serial, of another
    input, resumed, or of another job: another input content, stage, stage code or encoder
    setting, the options that change the work (`pipeline.plan.identity`), named."""
    path = folder / "report.json"
    try:
        report: dict[str, Any] = json.loads(read_regular(path))
        RunReport.from_dict(report)
        if not (math.isfinite(report["wall_seconds"]) and report["wall_seconds"] > 0):
            raise ValueError(f"wall_seconds is {report['wall_seconds']}")
    except FileNotFoundError:
        raise ConfigError(f"--from {folder}: no report.json there (run the job first)") from None
    except OSError as exc:
        raise InputError(f"--from {folder}: cannot read report.json: {exc}") from None
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, or not a report's fields
        raise ConfigError(
            f"--from {folder}: report.json is not a vidpipe report ({exc or 'nested too deeply'})"
        ) from None
    if report["layout"] != "serial":
        raise ConfigError(
            f"--from {folder}: report.json is of a '{report['layout']}' run; predict needs a "
            "serial run's"
        )
    _check_same_input(folder, job, report["input"])
    for task in job.tasks:
        _check_same_task(folder, job, task, report["tasks"].get(task.name))
    return report


def _check_same_input(folder: Path, job: RunPlan, recorded: dict[str, Any]) -> None:
    """Refuse a run of another video: one whose probe (size, duration, streams, frame count,
    keyframes) differs from the input's; a copy of the same video elsewhere is the same."""
    given = job.media.to_dict()
    differs = _difference(recorded, given, "path")
    if differs:
        raise ConfigError(
            f"--from {folder}: its run was of another input, '{recorded.get('path')}' "
            f"({differs}), not '{given['path']}': give that input, or a serial run of this one"
        )


def _difference(recorded: Any, given: dict[str, Any], *left_out: str) -> str:
    """The first key of `given` whose value `recorded` does not share, in words ("" if none)."""
    for key, value in given.items():
        theirs = recorded.get(key) if isinstance(recorded, dict) else None
        if key in left_out or theirs == value:
            continue
        if isinstance(value, dict) and isinstance(theirs, dict):
            return f"{key} {_difference(theirs, value)}"
        return f"{key} {theirs} against {value}"
    return ""


#: What a copy of the input elsewhere changes in a job's identity, and not the work.
_WHERE_THE_INPUT_IS = frozenset({"input", "input_mtime_ns"})


def _check_same_task(folder: Path, job: RunPlan, task: Task, recorded: Any) -> None:
    """Refuse a run whose `task` was another job than this one: the job identity its report
    records (`pipeline.plan.identity`) differs from the one these options give, where the
    input is left out (`_check_same_input` compares the videos; a copy is the same)."""
    if not isinstance(recorded, dict):
        raise ConfigError(f"--from {folder}: its run has no task '{task.name}'")
    if recorded.get("job") is None:
        raise ConfigError(
            f"--from {folder}: its report.json records no job for {task.name} (written by an "
            "older vidpipe), so nothing says it measured this work: run the job again"
        )
    why = changed(recorded["job"], job.jobs[task.name], task, ignore=_WHERE_THE_INPUT_IS)
    if why is not None:
        raise ConfigError(
            f"--from {folder}: its run of {task.name} was another job ({why}): give the "
            "options and stage code of that run, or a serial run of this job"
        )
    if recorded.get("resumed_frames"):
        raise ConfigError(f"--from {folder}: its run of {task.name} was resumed: not all measured")


def _rows(
    tasks: list[TaskWork], shapes: dict[str, Any], here: Machine, cores: int, serial_wall: float
) -> tuple[list[Row], Row]:
    m = dataclasses.replace(here, cores=cores)
    baseline = predict(tasks, shape_of("serial", tasks), m).seconds
    # Wall times are the measured serial time scaled by the model's ratios (its docstring).
    scale = serial_wall / predict(tasks, shape_of("serial", tasks), here).seconds
    rows = []
    for layout, shape in shapes.items():
        p = predict(tasks, shape, m)
        rows.append(
            Row(
                layout,
                cores,
                p.seconds * scale,
                baseline / p.seconds,
                p.limit,
                p.why,
                cores <= here.cores,
            )
        )
    best = perfect(tasks, m)
    return rows, Row(
        "perfect",
        cores,
        best.seconds * scale,
        baseline / best.seconds,
        best.limit,
        best.why,
        cores <= here.cores,
    )


def forecast(
    job: RunPlan,
    report: dict[str, Any],
    *,
    layouts: Iterable[str] = LAYOUTS,
    cores: Iterable[int] = (),
    measure: bool = True,
) -> Forecast:
    """Each of `layouts` (those the model predicts: the others are left out) on each of
    `cores` (default: this machine's), from `report`, a serial run of `job`.

    Without `measure`, nothing is measured on this machine: the stages count as holding the
    GIL and start-ups as free, which leaves only the perfect layout's figure meaningful."""
    tasks = task_work(job, report, measure=measure)
    here = machine(job, tasks, measure=measure)
    shapes = {name: shape for name in layouts if (shape := shape_for(name, tasks)) is not None}
    return _predictions(
        tasks, here, shapes if measure else {}, cores, report["wall_seconds"], _ns_per_mb(here)
    )


def _ns_per_mb(here: Machine) -> float:
    return here.copy_per_byte * 1e9 * 1e6


def _predictions(
    tasks: list[TaskWork],
    here: Machine,
    shapes: dict[str, Any],
    cores: Iterable[int],
    serial_wall: float,
    copy_ns_per_mb: float,
) -> Forecast:
    # The recorded figure is the truth the model works from, so that predicting again from a
    # forecast's own record gives the same figures to the last digit (ns/MB to s/B and back
    # does not round-trip).
    here = dataclasses.replace(here, copy_per_byte=copy_ns_per_mb / 1e15)
    result = Forecast(
        serial_wall_seconds=serial_wall,
        usable_cores=here.cores,
        startup_seconds=here.startup,
        copy_ns_per_mb=copy_ns_per_mb,
        tasks=tasks,
        single_thread_encoder=here.single_thread_encoder,
        workers=here.workers,
    )
    for count in sorted(set(cores) or {here.cores}):
        rows, best = _rows(tasks, shapes, here, count, serial_wall)
        result.rows.extend(rows)
        result.perfect.append(best)
    return result


def reforecast(data: dict[str, Any]) -> Forecast:
    """The forecast `data` (a `Forecast.to_dict()`) describes, predicted again by the model as
    it is now from the same measured ingredients, for the same layouts and core counts: a
    changed model checked against measurements already made, without measuring again."""
    tasks = [TaskWork(**{**t, "keyframes": tuple(t["keyframes"])}) for t in data["tasks"]]
    here = Machine(
        data["usable_cores"],
        data["startup_seconds"],
        data["copy_ns_per_mb"] / 1e15,
        data.get("single_thread_encoder", True),
        data.get("workers"),
    )
    layouts = dict.fromkeys(row["layout"] for row in data["rows"])
    shapes = {name: shape for name in layouts if (shape := shape_for(name, tasks)) is not None}
    cores = {row["cores"] for row in [*data["rows"], *data["perfect"]]}
    return _predictions(
        tasks, here, shapes, cores, data["serial_wall_seconds"], data["copy_ns_per_mb"]
    )


def forecast_table(f: Forecast) -> str:
    """The forecast as text: a block per core count, a line per layout."""
    lines = [
        f"from a serial run of {f.serial_wall_seconds:.2f} s on {f.usable_cores} usable cores; "
        f"a worker process starts in {f.startup_seconds:.2f} s here",
    ]
    for task in f.tasks:
        if task.stage_cpu:
            lines.append(
                f"  {task.name}: stages {task.stages:.1f} CPU-s, holding the GIL "
                f"{task.gil_share:.0%} of it, {task.serial_share:.0%} serial on two threads; "
                f"ffmpeg {task.decode + task.encode:.1f} CPU-s"
            )
        else:
            lines.append(f"  {task.name}: no stage; ffmpeg {task.encode:.1f} CPU-s")
    for best in f.perfect:
        mark = "" if best.this_machine else f" (predicted: this machine has {f.usable_cores})"
        lines += [
            "",
            f"{best.cores} cores{mark}",
            f"  {'layout':<10} {'wall s':>7} {'speedup':>8}  {'limit':<11} why",
        ]
        for row in (r for r in f.rows if r.cores == best.cores):
            lines.append(
                f"  {row.layout:<10} {row.wall_seconds:>7.2f} {row.speedup:>7.2f}x  "
                f"{row.limit:<11} {row.why}"
            )
        lines.append(
            f"  {'perfect':<10} {best.wall_seconds:>7.2f} {best.speedup:>7.2f}x  "
            f"{best.limit:<11} an estimate of the most a layout gains: {best.why}"
        )
    return "\n".join(lines)
