"""`serial`: the baseline. One thread does everything: tasks one after the other, progress and
saves inline in the same loop."""

from __future__ import annotations

import time

from ..engine.framemap import MapperChoice, inline_everywhere
from ..engine.helpers import Helpers
from ..engine.runner import TaskRun, run_task
from ..plan.planner import RunPlan
from ..report.build import build_report
from ..report.reporters import Reporter
from ..report.results import RunReport

__all__ = ["run", "run_serial"]


def run_serial(
    plan: RunPlan, reporter: Reporter, mapper_for: MapperChoice = inline_everywhere
) -> RunReport:
    """Run the tasks one after the other in this thread, each task's stages run by the frame
    mapper `mapper_for(task)` chooses."""
    started = time.perf_counter()
    with Helpers.inline(reporter) as helpers:
        results = {
            task.name: run_task(TaskRun.of(plan, task, mapper_for(task)), helpers)
            for task in plan.tasks
        }
    return build_report(plan, started, results)


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    return run_serial(plan, reporter)
