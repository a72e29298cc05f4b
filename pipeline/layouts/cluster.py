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
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import RunOptions
from ..environment import configure_process
from ..errors import Interrupted, PipelineError
from ..helpers import Helpers
from ..media.cut import cut_segment
from ..media.probe import MediaInfo
from ..outdir import OutDir, atomic_write_bytes
from ..planner import RunPlan
from ..report import RunReport, TaskResult, self_stats
from ..reporters import Reporter
from ..runner import run_segment
from ..segments import Pieces, Segment, digests_path, plan_segments
from ..supervisor import die_with_parent
from ..tasks import Task
from .rayenv import prepare_environment, require_ray
from .segments import SegmentedRun, SegmentProgress

# Ray itself is imported when a run starts, once its environment is set (see rayenv): here
# only whether it is installed is checked, so that `--layout ray` says which extra it needs.
require_ray()

__all__ = ["RETRIES", "run"]

#: How many times Ray runs a segment again when its worker process or node dies.
RETRIES = 3
#: The local instance's object store: enough for the cuts and pieces in flight; Ray spills to
#: disk beyond it.
OBJECT_STORE_BYTES = 512 << 20
#: Seconds to wait for a local instance to start, and to stop.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0


#: A Ray task works in a temporary folder named after its process; a worker killed (and
#: retried) cannot remove it, so the next segment on that node, and a local run's end, do.
WORKDIR_PREFIX = "vidpipe-segment-"


def _sweep_workdirs() -> None:
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


class _Signals:
    """SIGINT and SIGTERM as a flag while Ray runs, turned into `Interrupted` by the caller.

    A Python signal handler that raises inside Ray's native calls (`ray.wait`) loses which
    signal it was; the wait loop checks the flag between calls instead.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __enter__(self) -> _Signals:
        self._previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for sig in self._previous:
            signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _note(self, signum: int, frame: object) -> None:
        self.signum = self.signum or signum

    def check(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)


@dataclasses.dataclass(frozen=True)
class _Done:
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


def _encode_segment(
    task: Task,
    media: MediaInfo,
    segment: Segment,
    cut: bytes,
    options: RunOptions,
    queue: Any,
) -> _Done:
    """Body of the Ray task: the segment's cut, decoded, processed and encoded on this node."""
    import ray

    began = time.time()
    configure_process(options)
    node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"
    _sweep_workdirs()
    with tempfile.TemporaryDirectory(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-") as tmp:
        folder = Path(tmp)
        source = folder / "cut.mkv"
        source.write_bytes(cut)
        local = dataclasses.replace(segment, seek=None, piece=folder / "piece.mp4")
        reporter = _QueueReporter(queue, task.name, segment.number)
        with Helpers.threaded(reporter) as helpers:
            result = run_segment(
                task,
                dataclasses.replace(media, path=str(source)),
                folder,
                helpers,
                local,
                save_every=options.save_every,
            )
        thumbs = OutDir(folder).thumbnails(task.name)
        label = f"ray:segment:{task.name}:{segment.number}@{node}"
        # A Ray worker process runs one segment after another: its entry spans this segment
        # only, so that segments it ran in turn do not count as alive together.
        worker = dataclasses.replace(self_stats(label), started=began)
        return _Done(
            result=dataclasses.replace(result, processes=[worker, *result.processes]),
            piece=local.piece.read_bytes(),
            digests=digests_path(local).read_bytes(),
            thumbnails={p.name: p.read_bytes() for p in thumbs.glob("*.jpg")},
            node=node,
            cut_bytes=len(cut),
        )


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once when nothing listens at `address`: ray.init would retry it for ever."""
    host, _, port = address.removeprefix("ray://").rpartition(":")  # checked by RunOptions
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PipelineError(f"cannot reach the Ray cluster at {address} ({reason})") from exc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _local_instance(cpus: int) -> Iterator[str]:
    """Start a private, quiet Ray head node on loopback; yield its address; stop it after.

    Started with `ray start --block` in a session of its own, not with `ray.init()`: a
    terminal's Ctrl-C or a SIGTERM to our process group then reaches only this process, which
    stops Ray in order, and the node dies with us if we are killed (PR_SET_PDEATHSIG). It
    authenticates with the driver's token, and keeps its files in a folder removed after.
    """
    temp = tempfile.mkdtemp(prefix="vidpipe-ray-session-")
    port = _free_port()
    env = dict(os.environ)  # with the token `_authenticate` chose
    args = ["start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1"]
    args += ["--num-cpus", str(cpus), "--object-store-memory", str(OBJECT_STORE_BYTES)]
    args += ["--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp]
    log = Path(temp) / "ray-start.log"
    with log.open("wb") as out:
        head = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # prctl only: safe between fork and exec
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(port):
            if head.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise PipelineError(f"could not start a local Ray instance ({tail[0]})")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()  # `ray start --block` stops the node's processes on SIGTERM
        try:
            head.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # whatever of the node is left
        shutil.rmtree(temp, ignore_errors=True)
        _sweep_workdirs()  # the node's workers are gone now


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@contextlib.contextmanager
def _connected(address: str | None, cpus: int) -> Iterator[None]:
    """Connect to the cluster at `address`, or to a local instance started for this run."""
    import ray

    with contextlib.ExitStack() as stack:
        if address is None:
            address = stack.enter_context(_local_instance(cpus))
        else:
            _check_reachable(address)
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            ray.init(
                address=address,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise PipelineError(f"cannot join the Ray cluster at {address}: {exc}") from exc
        finally:
            for sig, handler in handlers.items():  # ray.init replaces SIGTERM's handler
                signal.signal(sig, handler)
        try:
            yield
        finally:
            ray.shutdown()


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

    remote = ray.remote(max_retries=RETRIES, retry_exceptions=False)(_encode_segment)
    nodes: dict[str, dict[str, Any]] = {}
    with _connected(plan.options.ray_address, plan.workers), _Signals() as signals:
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
            try:
                while running:
                    ready, _ = ray.wait(list(running), num_returns=1, timeout=0.1)
                    signals.check()
                    _forward_progress(queue, segmented.progress)
                    for ref in ready:
                        name, number = running.pop(ref)
                        try:
                            outcome: _Done = ray.get(ref)
                        except Exception as exc:
                            raise _failure(name, number, exc) from exc
                        _store(plan, segmented.pieces[name].segments[number], name, outcome)
                        _count(nodes, outcome)
                        segmented.finished(name, number, outcome.result)
            finally:
                for ref in running:
                    ray.cancel(ref, force=True)
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


def _store(plan: RunPlan, segment: Segment, task: str, outcome: _Done) -> None:
    """Write what a node sent back where the local layouts would have written it."""
    segment.piece.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(segment.piece, outcome.piece)
    atomic_write_bytes(digests_path(segment), outcome.digests)
    thumbs = plan.out.thumbnails(task)
    thumbs.mkdir(parents=True, exist_ok=True)
    for name, data in outcome.thumbnails.items():
        atomic_write_bytes(thumbs / name, data)


def _count(nodes: dict[str, dict[str, Any]], outcome: _Done) -> None:
    """Add a finished segment to its node's totals: work done and bytes over the network."""
    node = nodes.setdefault(
        outcome.node,
        {"segments": 0, "frames": 0, "busy_seconds": 0.0, "bytes_in": 0, "bytes_out": 0},
    )
    node["segments"] += 1
    node["frames"] += outcome.result.frames
    node["busy_seconds"] = round(node["busy_seconds"] + outcome.result.seconds, 4)
    node["bytes_in"] += outcome.cut_bytes
    node["bytes_out"] += (
        len(outcome.piece) + len(outcome.digests) + sum(map(len, outcome.thumbnails.values()))
    )
