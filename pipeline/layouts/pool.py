"""`pool`: a process per task, and for each a pool of worker processes for the per-frame stages.

Frames travel to the workers and back through the transport chosen with `--transport`: `pickle`
(frames through `multiprocessing` queues) or `shm` (a ring of shared-memory slots; only slot
numbers travel). See `pipeline.framepool`.
"""

from __future__ import annotations

from functools import partial

from ..framepool import ProcessMapper
from ..job import RunPlan
from ..report import RunReport
from ..reporters import Reporter
from .processes import run_task_processes

__all__ = ["run"]


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    options = plan.options
    mapper = partial(
        ProcessMapper,
        workers=plan.workers,
        transport=options.transport,
        start_method=options.start_method.value,
        run_id=plan.run_id,
        opencv_threads=options.opencv_threads,
        trace_dir=plan.trace_dir,
    )
    return run_task_processes(plan, reporter, mapper)
