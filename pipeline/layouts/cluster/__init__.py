"""`ray`: the `segments` layout across the nodes of a Ray cluster, with no shared filesystem.

The driver (this process) cuts each segment's packets out of the input without re-encoding
(`pipeline.media.cut`) and puts them into Ray's object store, once for both tasks (they cut at
the same keyframes); a Ray task on any node decodes its cut, runs the task's stages with the
frames' indices in the whole video, encodes the piece, and returns the piece, the digests of
its frames, its thumbnails, timings and the node's metrics.
The driver writes pieces and thumbnails into the output directory, checkpoints each finished
piece (so `--resume` works as under `segments`) and joins a task's pieces as `segments` does.

Ray retries a task whose worker process or node died (`max_retries`); an error raised by the
task itself (a stage failing, ffmpeg failing) is not retried and ends the run. Progress travels
through a Ray queue, ten updates a second per running segment. Without `--ray-address`, a
private local Ray node is started quietly (no dashboard, no usage statistics, a token of its
own, its temporary files in a folder removed afterwards) and stopped at the end of the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from ...errors import PipelineError
from ...media.cut import cut_segment
from ...plan.outdir import atomic_write_bytes
from ...plan.pieces import Pieces, Segment, digests_path, plan_segments
from ...plan.planner import RunPlan
from ...report.reporters import Reporter
from ...report.results import NodeStats, RunReport
from ..segments import SegmentedRun, SegmentProgress
from .env import prepare_environment, require_ray

# Ray itself is imported when a run starts, once its environment is set (see env): here
# only whether it is installed is checked, so that `--layout ray` says which extra it needs.
require_ray()

from .instance import Signals, connected  # noqa: E402  (after the check: they need no Ray yet)
from .remote import Done, encode_segment  # noqa: E402

__all__ = ["RETRIES", "run"]

#: How many times Ray runs a segment again when its worker process or node dies.
RETRIES = 3


def _failure(task: str, segment: int, exc: Exception) -> BaseException:
    """The error that ends the run when a segment's Ray task failed."""
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause
        if isinstance(cause, PipelineError | KeyboardInterrupt):
            return cause  # the stage's or ffmpeg's error, as under the other layouts
        return PipelineError(f"task '{task}': segment {segment} failed on Ray: {cause!r}")
    return PipelineError(
        f"task '{task}': segment {segment} failed on Ray after {RETRIES} retries: "
        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    )


def run(plan: RunPlan, reporter: Reporter) -> RunReport:
    started = time.perf_counter()
    prepare_environment(local=plan.options.ray_address is None)
    import ray
    from ray.util.queue import Queue

    remote = ray.remote(max_retries=RETRIES, retry_exceptions=False)(encode_segment)
    nodes: dict[str, NodeStats] = {}
    with connected(plan.options.ray_address, plan.workers), Signals() as signals:
        try:
            queue = Queue()
        except ray.exceptions.RayError as exc:
            raise PipelineError(f"Ray could not start the progress queue: {exc}") from exc
        resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
        pieces = _spread_over_cluster(plan, plan.pieces, resources)
        with SegmentedRun(plan, reporter, started, pieces) as segmented:
            running: dict[Any, tuple[str, int]] = {}
            # Both tasks cut the input at the same keyframes: each cut goes into the object
            # store once, and a node that runs both tasks' segments of it fetches it once.
            # Ray keeps a cut while a task that takes it may still run (retries included).
            shared: dict[tuple[int, int | None], Any] = {}
            with tempfile.TemporaryDirectory(prefix="vidpipe-cuts-") as cuts:
                for task, seg in segmented.pending():
                    signals.check()
                    key = (seg.first_frame, seg.frames)
                    if key not in shared:
                        cut = cut_segment(plan.media, seg, Path(cuts) / "cut.mkv")
                        shared[key] = ray.put(cut.read_bytes())
                    ref = remote.remote(task, plan.media, seg, shared[key], plan.options, queue)
                    running[ref] = (task.name, seg.number)
            shared.clear()
            # Segments still running when the run fails or is interrupted are not cancelled:
            # `ray.cancel` races with a reply already on its way and Ray's driver then aborts
            # ("Tried to complete task that was not pending", ray-project/ray#54846), leaving
            # our clean-up undone. Leaving `connected` ends this driver's job instead, and Ray
            # stops the job's workers on every node.
            while running:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.1)
                signals.check()
                _forward_progress(queue, segmented.progress)
                for ref in ready:
                    name, number = running.pop(ref)
                    try:
                        outcome: Done = ray.get(ref)
                    except Exception as exc:
                        raise _failure(name, number, exc) from exc
                    _store(plan, segmented.pieces[name].segments[number], name, outcome)
                    _count(nodes, outcome)
                    segmented.finished(name, number, outcome.result)
    return dataclasses.replace(segmented.report(), nodes=nodes)  # Ray stopped: its time counts


def _spread_over_cluster(
    plan: RunPlan, pieces: dict[str, Pieces], resources: dict[str, float]
) -> dict[str, Pieces]:
    """Without `--workers`, a joined cluster runs as many segments per task as it has CPUs.

    The plan counted this machine's cores; the cluster's are known only once joined. A
    resumed task keeps the segment plan its finished pieces were cut by, and a task whose
    stages carry state from frame to frame stays in one piece.
    """
    cpus = int(resources.get("CPU", 0))
    if plan.options.workers is not None or any(p.done for p in pieces.values()) or cpus < 1:
        return pieces
    return {
        task.name: Pieces(tuple(plan_segments(plan.media, cpus, plan.out_dir, task.name)))
        if task.frame_independent
        else pieces[task.name]  # one piece: its stages carry state from frame to frame
        for task in plan.tasks
    }


def _forward_progress(queue: Any, progress: dict[str, SegmentProgress]) -> None:
    from ray.util.queue import Empty

    with contextlib.suppress(Empty):
        for task, number, frames in queue.get_nowait_batch(queue.qsize()):
            progress[task].update(number, frames)


def _store(plan: RunPlan, segment: Segment, task: str, outcome: Done) -> None:
    """Write what a node sent back where the local layouts would have written it."""
    segment.piece.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(segment.piece, outcome.piece)
    atomic_write_bytes(digests_path(segment), outcome.digests)
    thumbs = plan.out.thumbnails(task)
    thumbs.mkdir(parents=True, exist_ok=True)
    for name, data in outcome.thumbnails.items():
        atomic_write_bytes(thumbs / name, data)


def _count(nodes: dict[str, NodeStats], outcome: Done) -> None:
    """Add a finished segment to its node's totals: work done and bytes over the network."""
    node = nodes.get(outcome.node, NodeStats())
    sent = len(outcome.piece) + len(outcome.digests) + sum(map(len, outcome.thumbnails.values()))
    nodes[outcome.node] = NodeStats(
        segments=node.segments + 1,
        frames=node.frames + outcome.result.frames,
        busy_seconds=round(node.busy_seconds + outcome.result.seconds, 4),
        bytes_in=node.bytes_in + outcome.cut_bytes,
        bytes_out=node.bytes_out + sent,
    )
