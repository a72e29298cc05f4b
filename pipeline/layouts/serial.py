"""`serial`: the baseline. One thread does everything: tasks one after the other, progress and
saves inline in the same loop."""

from __future__ import annotations

import time

from ..framemap import MapperChoice, inline_everywhere
from ..helpers import Helpers
from ..planner import RunPlan
from ..report import RunReport
from ..report_build import build_report
from ..reporters import Reporter
from ..runner import run_task

__all__ = ["run", "run_serial"]


def run_serial(
    plan: RunPlan, reporter: Reporter, mapper_for: MapperChoice = inline_everywhere
) -> RunReport:
    """Run the tasks one after the other in this thread, each task's stages run by the frame
    mapper `mapper_for(task)` chooses."""
    started = time.perf_counter()
    with Helpers.inline(reporter) as helpers:
        results = {
            task.name: run_task(
                task,
                plan.media,
                plan.out_dir,
                helpers,
                save_every=plan.options.save_every,
                mapper_factory=mapper_for(task),
                pieces=plan.pieces[task.name],
            )
            for task in plan.tasks
        }
    return build_report(plan, started, results)


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    return run_serial(plan, reporter)
