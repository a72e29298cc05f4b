"""The body of a segment's Ray task, run on any node of the cluster, and its work folders."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from ...config.options import RunOptions
from ...engine.helpers import Helpers
from ...engine.runner import TaskRun, run_segment
from ...instrument.procstats import self_stats
from ...media.probe import MediaInfo
from ...plan.outdir import OutDir
from ...plan.pieces import Segment, digests_path
from ...plan.tasks import Task
from ...report.environment import configure_process
from ...report.results import TaskResult

__all__ = ["WORKDIR_PREFIX", "Done", "encode_segment", "sweep_workdirs"]


#: A Ray task works in a temporary folder named after its process; a worker killed (and
#: retried) cannot remove it, so the next segment on that node, and a local run's end, do.
WORKDIR_PREFIX = "vidpipe-segment-"


def sweep_workdirs() -> None:
    """Remove this node's work folders of Ray workers that are no longer alive."""
    for folder in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*-*"):
        pid = folder.name.removeprefix(WORKDIR_PREFIX).split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@dataclasses.dataclass(frozen=True)
class Done:
    """What a Ray task sends back for one segment."""

    result: TaskResult
    piece: bytes
    digests: bytes
    thumbnails: dict[str, bytes]
    node: str  # host name and the start of Ray's node id
    cut_bytes: int


class _QueueReporter:
    """A reporter for a Ray task: frame counts go to the driver through a Ray queue."""

    def __init__(self, queue: Any, task: str, number: int) -> None:
        self._queue = queue
        self._key = (task, number)

    def task_started(self, task: str, total_frames: int) -> None:
        pass

    def frames_done(self, task: str, frames: int) -> None:
        with contextlib.suppress(Exception):  # progress is best effort: never fail the work
            self._queue.put_nowait((*self._key, frames))

    def task_finished(self, task: str, result: TaskResult) -> None:
        pass


def encode_segment(
    task: Task,
    media: MediaInfo,
    segment: Segment,
    cut: bytes,
    options: RunOptions,
    queue: Any,
) -> Done:
    """Body of the Ray task: the segment's cut, decoded, processed and encoded on this node."""
    import ray

    began = time.time()
    configure_process(options)
    node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"
    sweep_workdirs()
    with tempfile.TemporaryDirectory(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-") as tmp:
        folder = Path(tmp)
        source = folder / "cut.mkv"
        source.write_bytes(cut)
        local = dataclasses.replace(segment, seek=None, piece=folder / "piece.mp4")
        reporter = _QueueReporter(queue, task.name, segment.number)
        with Helpers.threaded(reporter) as helpers:
            cut_media = dataclasses.replace(media, path=str(source))
            run = TaskRun(task, cut_media, folder, options.save_every)
            result = run_segment(run, helpers, local)
        thumbs = OutDir(folder).thumbnails(task.name)
        label = f"ray:segment:{task.name}:{segment.number}@{node}"
        # A Ray worker process runs one segment after another: its entry spans this segment
        # only, so that segments it ran in turn do not count as alive together.
        worker = dataclasses.replace(self_stats(label), started=began)
        return Done(
            result=dataclasses.replace(result, processes=[worker, *result.processes]),
            piece=local.piece.read_bytes(),
            digests=digests_path(local).read_bytes(),
            thumbnails={p.name: p.read_bytes() for p in thumbs.glob("*.jpg")},
            node=node,
            cut_bytes=len(cut),
        )
