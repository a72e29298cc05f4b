"""`pool`: a process per task, and for each a pool of worker processes for the per-frame stages.

Frames travel to the workers and back through the transport chosen with `--transport`: `pickle`
(frames through `multiprocessing` queues) or `shm` (a ring of shared-memory slots; only slot
numbers travel). See `pipeline.engine.framepool`.
"""

from __future__ import annotations

from functools import partial

from ..config.settings import Transport
from ..engine.framemap import MapperFactory, PoolSize
from ..engine.framepool import ProcessMapper
from ..plan.planner import RunPlan
from ..report.reporters import Reporter
from ..report.results import RunReport
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
        size=PoolSize(workers or plan.workers, window),
        transport=transport or options.transport,
        start_method=options.start_method.value,
        run_id=plan.run_id,
        opencv_threads=options.opencv_threads,
        trace_dir=plan.trace_dir,
    )


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    factory = process_pool(plan)
    return run_task_processes(plan, reporter, lambda task: factory)
