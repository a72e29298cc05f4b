"""`serial`: the baseline. One thread does everything: tasks one after the other, progress and
saves inline in the same loop."""

from __future__ import annotations

import time

from ..helpers import Helpers
from ..job import RunPlan, build_report
from ..report import RunReport
from ..reporters import Reporter
from ..runner import run_task

__all__ = ["run"]


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    started = time.perf_counter()
    with Helpers.inline(reporter) as helpers:
        results = {
            task.name: run_task(
                task,
                plan.media,
                plan.out_dir,
                helpers,
                save_every=plan.options.save_every,
                pieces=plan.pieces[task.name],
            )
            for task in plan.tasks
        }
    return build_report(plan, started, results)
