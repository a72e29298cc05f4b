"""`pool`: a process per task, and for each a pool of worker processes for the per-frame stages.

Frames travel to the workers and back through the transport chosen with `--transport`: `pickle`
(frames through `multiprocessing` queues) or `shm` (a ring of shared-memory slots; only slot
numbers travel). See `pipeline.framepool`.
"""

from __future__ import annotations

from functools import partial

from ..framemap import MapperFactory
from ..framepool import ProcessMapper
from ..planner import RunPlan
from ..report import RunReport
from ..reporters import Reporter
from ..settings import Transport
from .processes import run_task_processes

__all__ = ["process_pool", "run"]


def process_pool(
    plan: RunPlan,
    workers: int | None = None,
    window: int | None = None,
    transport: Transport | None = None,
) -> MapperFactory:
    """A frame mapper running the stages on a pool of `workers` processes (default: the
    plan's), with at most `window` frames in flight (default: twice the workers), moving frames
    by `transport` (default: `--transport`)."""
    options = plan.options
    return partial(
        ProcessMapper,
        workers=workers or plan.workers,
        window=window,
        transport=transport or options.transport,
        start_method=options.start_method.value,
        run_id=plan.run_id,
        opencv_threads=options.opencv_threads,
        trace_dir=plan.trace_dir,
    )


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    factory = process_pool(plan)
    return run_task_processes(plan, reporter, lambda task: factory)
