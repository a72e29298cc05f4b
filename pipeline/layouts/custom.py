"""`custom`: a layout file's layout (`--layout path/to/layout.toml`; see
`pipeline.config.layout_file`).

It composes the pieces the registered layouts are made of: the tasks are placed by the same
function as under `serial`, `threads` or `processes`, and each task's stages run on the frame
mapper its `frames` table names, the same mappers as `hybrid` (threads) and `pool` (processes).
"""

from __future__ import annotations

from ..config.layout_file import FramePool, FramesPlan, Placement, read_layout_file
from ..engine.framemap import InlineMapper, MapperFactory
from ..plan.planner import RunPlan
from ..plan.tasks import Task
from ..report.reporters import Reporter
from ..report.results import RunReport
from .hybrid import thread_pool
from .pool import process_pool
from .processes import run_task_processes
from .serial import run_serial
from .threads import run_threads

__all__ = ["run"]

PLACEMENTS = {
    Placement.SERIAL: run_serial,
    Placement.THREADS: run_threads,
    Placement.PROCESSES: run_task_processes,
}


def _mapper(plan: RunPlan, frames: FramesPlan) -> MapperFactory:
    if frames.pool is FramePool.THREADS:
        return thread_pool(plan, frames.workers, frames.window)
    if frames.pool is FramePool.PROCESSES:
        return process_pool(plan, frames.workers, frames.window, frames.transport)
    return InlineMapper


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    layout = plan.options.layout_file or read_layout_file(plan.options.layout)

    def mapper_for(task: Task) -> MapperFactory:
        return _mapper(plan, layout.frames_for(task.name))

    return PLACEMENTS[layout.tasks](plan, reporter, mapper_for)
