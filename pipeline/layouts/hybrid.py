"""`hybrid`: a process per task, and inside each a thread pool for the per-frame stages.

Frames are shared by the threads without copies and put back in order before encoding. Stages
that release the GIL (OpenCV, numpy) scale with the threads; pure-Python ones take turns.
"""

from __future__ import annotations

from functools import partial

from ..engine.framemap import MapperFactory, PoolSize, ThreadMapper
from ..plan.planner import RunPlan
from ..report.reporters import Reporter
from ..report.results import RunReport
from .processes import run_task_processes

__all__ = ["run", "thread_pool"]


def thread_pool(
    plan: RunPlan, workers: int | None = None, window: int | None = None
) -> MapperFactory:
    """A frame mapper running the stages on a pool of `workers` threads (default: the plan's),
    with at most `window` frames in flight (default: twice the threads)."""
    return partial(ThreadMapper, size=PoolSize(workers or plan.workers, window))


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    factory = thread_pool(plan)
    return run_task_processes(plan, reporter, lambda task: factory)
