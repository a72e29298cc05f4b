"""`threads`: one process, a thread per task, plus one progress thread and one save thread.

All threads share memory and the GIL: pure-Python work takes turns, while OpenCV, numpy and the
ffmpeg pipes release the GIL and overlap.
"""

from __future__ import annotations

import queue
import threading
import time

from ..engine.framemap import MapperChoice, inline_everywhere
from ..engine.helpers import Helpers
from ..engine.runner import TaskRun, run_task
from ..plan.planner import RunPlan
from ..plan.tasks import Task
from ..report.build import build_report
from ..report.reporters import Reporter
from ..report.results import RunReport, TaskResult

__all__ = ["run", "run_threads"]

_Outcome = tuple[str, TaskResult | None, BaseException | None]


#: Seconds the task threads get to stop once the run fails or is interrupted. A thread stuck in
#: a stage cannot be stopped: the run ends without it (`leave_stuck_threads`).
STOP_GRACE = 1.0


def run_threads(
    plan: RunPlan, reporter: Reporter, mapper_for: MapperChoice = inline_everywhere
) -> RunReport:
    """Run each task in a thread of its own, its stages run by the frame mapper
    `mapper_for(task)` chooses; the first error stops every task.

    Task threads are daemons, waited for at most `STOP_GRACE` seconds after a failure or an
    interruption: a stage that never returns cannot hold the run.
    """
    started = time.perf_counter()
    outcomes: queue.Queue[_Outcome] = queue.Queue()
    results: dict[str, TaskResult] = {}

    def work(task: Task, helpers: Helpers) -> None:
        try:
            result = run_task(TaskRun.of(plan, task, mapper_for(task)), helpers)
            outcomes.put((task.name, result, None))
        except BaseException as exc:  # handed to the main thread, which raises it
            outcomes.put((task.name, None, exc))

    with Helpers.threaded(reporter, plan.save_queue) as helpers:
        threads = [
            threading.Thread(
                target=work, args=(task, helpers), name=f"task-{task.name}", daemon=True
            )
            for task in plan.tasks
        ]
        try:
            for thread in threads:
                thread.start()
            for _ in threads:
                name, result, error = outcomes.get()
                if error is not None:
                    raise error
                assert result is not None
                results[name] = result
        except BaseException:
            helpers.cancel()  # first error (or Ctrl-C) stops every other task
            deadline = time.monotonic() + STOP_GRACE
            for thread in threads:
                if thread.ident is not None:  # started
                    thread.join(max(0.0, deadline - time.monotonic()))
            raise
        for thread in threads:
            thread.join()  # each has handed over its result: it is ending
    return build_report(plan, started, results)


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    return run_threads(plan, reporter)
