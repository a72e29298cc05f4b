"""The one worker loop: decode -> stages -> digest -> encode, with progress and saves.

Every layout runs tasks through `run_task`; layouts differ only in where they call it (the main
thread, a thread per task, a process per task) and which helpers they hand it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import trace
from .errors import Interrupted, MediaError
from .faults import fault_at
from .framemap import InlineMapper, MapperFactory
from .helpers import Helpers
from .media.probe import MediaInfo
from .media.sink import Encoder
from .media.source import Decoder
from .report import TaskResult
from .saves import save_thumbnail, thumbnail_path, write_checkpoint
from .segments import Segment
from .tasks import Task

__all__ = ["FrameDigest", "checkpoint_path", "checkpoint_state", "run_task"]


class FrameDigest:
    """sha256 over the sha256 digests of every frame, in frame order.

    Per-frame digests make the result computable by any layout, including ones that process
    frames or segments out of order: they only need to combine the per-frame digests in order
    (`combine`). With `keep`, the per-frame digests are kept too (32 bytes a frame).
    """

    def __init__(self, *, keep: bool = False) -> None:
        self._outer = hashlib.sha256()
        self._keep = keep
        self._kept: list[bytes] = []

    def update(self, frame: np.ndarray) -> None:
        inner = hashlib.sha256(np.ascontiguousarray(frame).data).digest()
        self._outer.update(inner)
        if self._keep:
            self._kept.append(inner)

    @property
    def kept(self) -> bytes:
        """The kept per-frame digests, concatenated."""
        return b"".join(self._kept)

    @staticmethod
    def combine(parts: list[bytes]) -> str:
        """The digest of a video from the kept per-frame digests of its parts, in order."""
        return hashlib.sha256(b"".join(parts)).hexdigest()

    def hexdigest(self) -> str:
        return self._outer.hexdigest()


def _kill(pid: int | None) -> None:
    """Kill a process from outside, as a crash would (fault injection)."""
    if pid is not None:
        os.kill(pid, signal.SIGKILL)


def _save_thumbnail(task: str, index: int, *args: Any) -> None:
    fault_at("saver", task, index)
    save_thumbnail(*args)


def checkpoint_path(out_dir: Path, task: str) -> Path:
    """Where the save thread keeps `task`'s checkpoint."""
    return out_dir / f"{task}.checkpoint.json"


def checkpoint_state(
    task: Task, frames: int, thumbnails: int, latest: str | None, complete: bool
) -> dict[str, Any]:
    """What a task's checkpoint file holds: frames done, and outputs so far.

    The thumbnails are summed up, not listed: a checkpoint's size stays the same however long
    the video, and so does the cost of writing it.
    """
    return {
        "task": task.name,
        "frames_done": frames,
        "complete": complete,
        "output": task.output if complete else None,
        "thumbnails": {"folder": f"thumbnails/{task.name}", "count": thumbnails, "latest": latest},
        "updated_unix": time.time(),
    }


def run_task(
    task: Task,
    media: MediaInfo,
    out_dir: Path,
    helpers: Helpers,
    *,
    save_every: int,
    mapper_factory: MapperFactory = InlineMapper,
    segment: Segment | None = None,
) -> TaskResult:
    """Run `task` on `media` in the calling thread and return what it produced.

    `mapper_factory` decides where the stages run (inline by default, or a thread or process
    pool); decoding, digests, encoding, progress and saves stay in the calling thread.
    With `segment`, only that range of frames is processed, into the segment's piece (no audio,
    no checkpoint: the layout that planned the segments keeps those), and the result carries
    the per-frame digests so that the layout can combine them.

    Raises `StageError`, `MediaError`, `SaveError` or `Interrupted` (when `helpers` is
    cancelled); whatever happens, the decoder and encoder are stopped, the stages torn down, and
    nothing is left at the output path unless it is complete.
    """
    started = time.perf_counter()
    in_spec = task.input_spec(media)
    out_spec = task.output_spec(media)
    output = segment.piece if segment else out_dir / task.output
    keep_audio = task.keep_audio and segment is None
    first = segment.first_frame if segment else 0
    thumbs, latest = 0, None
    digest = FrameDigest(keep=segment is not None)
    frames = 0
    digest_ns = saves_ns = 0
    threads: set[str] = set()  # threads seen in this process while the task ran

    def save_checkpoint(*, complete: bool) -> None:
        state = checkpoint_state(task, frames, thumbs, latest, complete)
        helpers.saver.submit(partial(write_checkpoint, checkpoint_path(out_dir, task.name), state))

    helpers.progress.started(task.name, media.packets)
    try:
        with (
            mapper_factory(task.name, task.stages, in_spec) as mapper,
            Decoder(
                media.path,
                in_spec,
                ring=mapper.window + 2,
                buffers=mapper.buffers(),
                label=task.name,
                start=segment.seek if segment else None,
                frames=segment.frames if segment else None,
            ) as decoder,
            Encoder(
                output,
                out_spec,
                task.encoder,
                audio_from=Path(media.path) if keep_audio else None,
                audio_codec=media.audio_codec,
                label=task.name,
            ) as encoder,
        ):
            for index, frame in mapper.map(iter(decoder), first):
                if helpers.cancelled.is_set():
                    raise Interrupted()
                fault_at("decoder", task.name, index, kill=lambda: _kill(decoder.pid))
                begin = trace.now()
                digest.update(frame)
                end = trace.now()
                digest_ns += end - begin
                trace.span("digest", "digest", begin, end, frame=index)
                encoder.write(frame)
                fault_at("encoder", task.name, index, kill=lambda: _kill(encoder.pid))
                frames = index + 1 - first
                helpers.progress.update(task.name, frames)
                if index == first:
                    threads.update(t.name for t in threading.enumerate())
                if index % save_every == 0:
                    begin = trace.now()
                    thumb = thumbnail_path(out_dir, task.name, index)
                    thumbs, latest = thumbs + 1, thumb.name
                    helpers.saver.submit(
                        partial(
                            _save_thumbnail, task.name, index, thumb, frame.copy(), out_spec.pix_fmt
                        )
                    )
                    if segment is None:
                        save_checkpoint(complete=False)
                    saves_ns += trace.now() - begin
            decoder.close()
            if helpers.cancelled.is_set():
                raise Interrupted()
            if frames == 0:
                raise MediaError(f"{media.path}: no frame could be decoded")
            helpers.saver.flush()  # a run whose saves failed does not promote its output
            encoder.finish()
    except (MediaError, BrokenPipeError) as exc:
        if helpers.cancelled.is_set():
            raise Interrupted() from exc  # ffmpeg was killed to stop us: not its failure
        named = MediaError(f"task '{task.name}': {exc}")
        named.stderr_tail = getattr(exc, "stderr_tail", "")
        raise named from exc
    if segment is None:
        save_checkpoint(complete=True)
    processes = [s for s in (decoder.stats, encoder.stats) if s is not None] + mapper.processes
    result = TaskResult(
        name=task.name,
        frames=frames,
        seconds=time.perf_counter() - started,
        output=output.name,
        frame_digest=digest.hexdigest(),
        pid=os.getpid(),
        threads=sorted(threads.union(t.name for t in threading.enumerate())),
        stages=[stage.describe() for stage in task.stages],
        decode_format=in_spec.pix_fmt.value,
        width=out_spec.width,
        height=out_spec.height,
        fps=f"{out_spec.fps.numerator}/{out_spec.fps.denominator}",
        input_bytes=media.size_bytes,
        output_bytes=output.stat().st_size,
        size_fix=task.size_fix,
        audio=media.audio_codec if keep_audio else None,
        thumbnails=thumbs,
        processes=processes,
        workers=mapper.workers,
        timings={
            "decode": decoder.wait_seconds,
            **{f"stage {name}": spent for name, spent in mapper.stage_seconds().items()},
            "pool": mapper.wait_seconds,
            "copy": sum(w.copy_seconds for w in mapper.workers),
            "digest": digest_ns / 1e9,
            "encode": encoder.wait_seconds,
            "saves": saves_ns / 1e9,
        },
        frame_digests=digest.kept,
    )
    helpers.progress.finished(task.name, result)
    return result
