"""The report of a finished run, from its plan and its tasks' results."""

from __future__ import annotations

import dataclasses
import time

from ..instrument.procstats import self_stats
from ..plan.planner import RunPlan
from .environment import collect_environment
from .results import RunReport, TaskResult

__all__ = ["build_report"]


def build_report(plan: RunPlan, started: float, results: dict[str, TaskResult]) -> RunReport:
    """The report of a finished run; `started` is its `time.perf_counter()` at the start.
    Each task's result records its job's identity (`RunPlan.jobs`)."""
    results = {**plan.finished, **results}
    order = list(plan.options.tasks)
    ordered = {
        name: dataclasses.replace(results[name], job=plan.jobs.get(name))
        for name in sorted(results, key=lambda n: order.index(n) if n in order else len(order))
    }
    return RunReport(
        layout=plan.options.layout,
        wall_seconds=round(time.perf_counter() - started, 4),
        input=plan.media.to_dict(),
        tasks=ordered,
        processes=[self_stats("main"), *(p for r in ordered.values() for p in r.processes)],
        environment=collect_environment(plan.options),
    )
