"""What every layout module provides, and what layouts share."""

from __future__ import annotations

from typing import Protocol

from ..planner import RunPlan
from ..report import RunReport
from ..reporters import Reporter

__all__ = ["Layout"]


class Layout(Protocol):
    """A layout module: `run` carries out a plan, reporting progress to `reporter`, and
    returns the run's report; it raises a `PipelineError` when the run fails."""

    def run(self, plan: RunPlan, reporter: Reporter) -> RunReport: ...
