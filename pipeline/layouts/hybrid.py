"""`hybrid`: a process per task, and inside each a thread pool for the per-frame stages.

Frames are shared by the threads without copies and put back in order before encoding. Stages
that release the GIL (OpenCV, numpy) scale with the threads; pure-Python ones take turns.
"""

from __future__ import annotations

from functools import partial

from ..framemap import ThreadMapper
from ..job import RunPlan
from ..report import RunReport
from ..reporters import Reporter
from .processes import run_task_processes

__all__ = ["run"]


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    return run_task_processes(plan, reporter, partial(ThreadMapper, workers=plan.workers))
