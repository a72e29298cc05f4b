"""What running a task needs, as one value: the call shape every layout uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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
    how its output is cut (`pieces`; None: in one piece) and who runs its stages (`mapper`)."""

    task: Task
    media: MediaInfo
    out_dir: Path
    save_every: int
    pieces: Pieces | None = None
    mapper: MapperFactory = InlineMapper

    @classmethod
    def of(cls, plan: RunPlan, task: Task, mapper: MapperFactory = InlineMapper) -> TaskRun:
        """Task `task` of `plan`, its stages run by `mapper`."""
        return cls(
            task, plan.media, plan.out_dir, plan.options.save_every, plan.pieces[task.name], mapper
        )

    @property
    def out(self) -> OutDir:
        return OutDir(self.out_dir)
