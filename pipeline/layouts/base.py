"""What every layout module provides, and what layouts share."""

from __future__ import annotations

from typing import Protocol

from ..plan.planner import RunPlan
from ..report.reporters import Reporter
from ..report.results import RunReport

__all__ = ["Layout"]


class Layout(Protocol):
    """A layout module: `run` carries out a plan, reporting progress to `reporter`, and
    returns the run's report; it raises a `PipelineError` when the run fails."""

    def run(self, plan: RunPlan, reporter: Reporter) -> RunReport: ...
