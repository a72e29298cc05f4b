"""`processes`: a process per task, each with its own memory, GIL, progress and save threads.

The parent starts one worker per task through `Supervisor`, forwards their progress to its
reporter and gathers their results. Independent tasks then run truly in parallel; what they
share (the input path, the options) is pickled to them once, and only small messages come back.
`hybrid` and `pool` are this layout with a frame pool inside each task process.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time

from ..config.settings import StartMethod
from ..engine.framemap import InlineMapper, MapperChoice, MapperFactory, inline_everywhere
from ..engine.helpers import Helpers
from ..engine.runner import TaskRun, run_segment, run_task
from ..engine.supervisor import Supervisor
from ..instrument import trace
from ..instrument.procstats import self_stats
from ..plan.pieces import Segment
from ..plan.planner import RunPlan
from ..plan.tasks import Task
from ..report.build import build_report
from ..report.environment import configure_process
from ..report.reporters import Reporter
from ..report.results import RunReport, TaskResult

__all__ = ["run", "run_task_processes", "task_worker", "worker_context"]


def worker_context(method: StartMethod) -> multiprocessing.context.BaseContext:
    """The multiprocessing context for `method`; forkserver preloads the pipeline once."""
    context = multiprocessing.get_context(method.value)
    if method is StartMethod.FORKSERVER:
        context.set_forkserver_preload(["pipeline.engine.runner"])
    return context


def task_worker(
    reporter: Reporter,
    task: Task,
    plan: RunPlan,
    mapper: MapperFactory = InlineMapper,
    segment: Segment | None = None,
) -> TaskResult:
    """The body of a worker process that runs one task, or one segment of it.

    The worker gets its own progress and save threads, and reports its own CPU time and memory
    beside its ffmpeg children's.
    """
    configure_process(plan.options)
    if segment is None:
        role, label = f"task {task.name}", f"task:{task.name}"
    else:
        role, label = (
            f"segment {segment.number} of {task.name}",
            f"segment:{task.name}:{segment.number}",
        )
    with (
        trace.session(role, plan.trace_dir),
        Helpers.threaded(reporter, plan.save_queue) as helpers,
    ):
        run = TaskRun.of(plan, task, mapper)
        result = run_task(run, helpers) if segment is None else run_segment(run, helpers, segment)
    return dataclasses.replace(result, processes=[self_stats(label), *result.processes])


def run_task_processes(
    plan: RunPlan, reporter: Reporter, mapper_for: MapperChoice = inline_everywhere
) -> RunReport:
    """Run each task in a process of its own, its stages run by the frame mapper
    `mapper_for(task)` chooses (it is pickled to the task's process)."""
    started = time.perf_counter()
    with Supervisor(worker_context(plan.options.start_method), reporter) as supervisor:
        for task in plan.tasks:
            supervisor.start(task.name, task_worker, task, plan, mapper_for(task))
        results = supervisor.results()
    return build_report(plan, started, results)


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    return run_task_processes(plan, reporter)
