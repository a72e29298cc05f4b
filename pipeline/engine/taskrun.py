"""What running a task needs, as one value: the call shape every layout uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..media.probe import MediaInfo
from ..plan.outdir import OutDir
from ..plan.pieces import Pieces
from ..plan.tasks import Task
from .framemap import InlineMapper, MapperFactory

if TYPE_CHECKING:
    from ..plan.planner import RunPlan

__all__ = ["TaskRun"]


@dataclass(frozen=True)
class TaskRun:
    """What running a task needs: the task, its input, the output folder, how often to save,
    how its output is cut (`pieces`; None: in one piece), who runs its stages (`mapper`) and
    the job's identity its checkpoints record (`job`, `RunPlan.jobs`)."""

    task: Task
    media: MediaInfo
    out_dir: Path
    save_every: int
    pieces: Pieces | None = None
    mapper: MapperFactory = InlineMapper
    job: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, plan: RunPlan, task: Task, mapper: MapperFactory = InlineMapper) -> TaskRun:
        """Task `task` of `plan`, its stages run by `mapper`."""
        pieces, job = plan.pieces[task.name], plan.jobs[task.name]
        return cls(task, plan.media, plan.out_dir, plan.options.save_every, pieces, mapper, job)

    @property
    def out(self) -> OutDir:
        return OutDir(self.out_dir)
