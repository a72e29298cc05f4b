"""The one worker loop: decode -> stages -> digest -> encode, with progress and saves.

Every layout runs tasks through `run_task` (or, cut into segments, `run_segment`); layouts differ
only in where they call it (the main thread, a thread per task, a process per task or segment)
and which helpers and frame mapper they hand it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from . import trace
from .checkpoints import checkpoint_state, thumbnails_in
from .errors import Interrupted, MediaError, StageError
from .faults import fault_at
from .framemap import FrameMapper, InlineMapper, MapperFactory
from .helpers import Helpers
from .media.probe import MediaInfo
from .media.sink import Encoder, join_pieces
from .media.source import Decoder
from .media.transcode import Transcoder
from .outdir import OutDir, atomic_write_bytes, thumbnail_name
from .report import ProcessStats, TaskResult
from .saves import save_thumbnail, write_checkpoint
from .segments import Pieces, Segment, cut_segments, digests_path, piece_frames, read_digests
from .tasks import Task

__all__ = ["FrameDigest", "run_segment", "run_task"]


class FrameDigest:
    """sha256 over the 128-bit xxh3 digests of every frame, in frame order.

    Per-frame digests make the result computable by any layout, including ones that process
    frames or segments out of order: they only need to combine the per-frame digests in order
    (`combine`). With `keep`, the per-frame digests are kept too (`DIGEST_SIZE` bytes a frame).
    Frames are hashed with xxh3 (tens of GB/s) rather than sha256 (under 2 GB/s here: a third
    of a core for a 720p stream, taken from the encoder): the digests tell whether two runs made
    the same frames, where a 128-bit hash's chance of missing a difference is 2^-128; they do
    not authenticate anything, which is what a cryptographic hash would add.
    """

    def __init__(self, *, keep: bool = False) -> None:
        self._outer = hashlib.sha256()
        self._keep = keep
        self._kept: list[bytes] = []

    def update(self, frame: np.ndarray) -> None:
        inner = xxhash.xxh3_128(np.ascontiguousarray(frame).data).digest()
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


class _Tally:
    """What a task's ranges have produced so far, in this run and (`resumed`) earlier ones."""

    def __init__(self, frames: int = 0, thumbnails: list[int] | None = None) -> None:
        self.resumed = frames
        self.frames = frames
        self.thumbs = len(thumbnails or [])
        self.latest: str | None = None
        if thumbnails:
            self.latest = thumbnail_name(thumbnails[-1])
        self.threads: set[str] = set()  # threads seen in this process while the task ran
        self.processes: list[ProcessStats] = []
        self.waits: dict[str, float] = {}  # seconds waiting on ffmpeg, by phase
        self.digest_ns = self.saves_ns = 0

    def wait(self, phase: str, seconds: float) -> None:
        self.waits[phase] = self.waits.get(phase, 0.0) + seconds


def _encode(
    task: Task,
    media: MediaInfo,
    out_dir: Path,
    helpers: Helpers,
    mapper: FrameMapper,
    tally: _Tally,
    *,
    output: Path,
    segment: Segment | None,
    save_every: int,
    on_save: Callable[[], None] | None,
) -> FrameDigest:
    """Decode `segment` (or the whole video), map it through the stages, encode it to `output`.

    Audio is muxed only when the whole video goes straight to the task's output. Thumbnails go
    to the save thread every `save_every` frames, with `on_save` (a checkpoint) after them.
    """
    in_spec = task.input_spec(media)
    out_spec = task.output_spec(media)
    keep_audio = task.keep_audio and segment is None
    first = segment.first_frame if segment else 0
    digest = FrameDigest(keep=segment is not None)
    before = tally.frames
    reading: dict[str, Any] = dict(
        ring=mapper.window + 2,
        buffers=mapper.buffers(),
        label=task.name,
        start=segment.seek if segment else None,
        frames=segment.frames if segment else None,
    )
    with contextlib.ExitStack() as stack:
        decoder: Decoder
        encoder: Encoder | Transcoder
        if task.stages:
            decoder = stack.enter_context(Decoder(media.path, in_spec, **reading))
            encoder = stack.enter_context(
                Encoder(
                    output,
                    out_spec,
                    task.encoder,
                    audio_from=Path(media.path) if keep_audio else None,
                    audio_codec=media.audio_codec,
                    label=task.name,
                )
            )
        else:  # one ffmpeg decodes and encodes; we only look at the frames
            decoder = encoder = stack.enter_context(
                Transcoder(
                    media.path,
                    in_spec,
                    task.encoder,
                    output,
                    audio_codec=media.audio_codec if keep_audio else None,
                    **reading,
                )
            )
        for index, frame in mapper.map(iter(decoder), first):
            if helpers.cancelled.is_set():
                raise Interrupted()
            fault_at("decoder", task.name, index, kill=lambda: _kill(decoder.pid))
            begin = trace.now()
            digest.update(frame)
            end = trace.now()
            tally.digest_ns += end - begin
            trace.span("digest", "digest", begin, end, frame=index)
            encoder.write(frame)
            fault_at("encoder", task.name, index, kill=lambda: _kill(encoder.pid))
            tally.frames = before + index + 1 - first
            helpers.progress.update(task.name, tally.frames)
            if index == first:
                tally.threads.update(t.name for t in threading.enumerate())
            if index % save_every == 0:
                begin = trace.now()
                thumb = OutDir(out_dir).thumbnail(task.name, index)
                tally.thumbs, tally.latest = tally.thumbs + 1, thumb.name
                helpers.saver.submit(
                    partial(
                        _save_thumbnail, task.name, index, thumb, frame.copy(), out_spec.pix_fmt
                    )
                )
                if on_save is not None:
                    on_save()
                tally.saves_ns += trace.now() - begin
        decoder.close()
        if helpers.cancelled.is_set():
            raise Interrupted()
        if tally.frames == before:
            raise MediaError(f"{media.path}: no frame could be decoded")
        helpers.saver.flush()  # a run whose saves failed does not promote its output
        encoder.finish()
    tally.wait(decoder.phase, decoder.wait_seconds)
    tally.processes += [decoder.stats] if decoder.stats else []
    if encoder is not decoder:  # a separate encoder ffmpeg (a Transcoder is both)
        tally.wait("encode", encoder.wait_seconds)
        tally.processes += [encoder.stats] if encoder.stats else []
    return digest


def _named(task: Task, helpers: Helpers, exc: BaseException) -> BaseException:
    """The error to raise for a media failure: named after the task, or the interruption."""
    if helpers.cancelled.is_set():
        return Interrupted()  # ffmpeg was killed to stop us: not its failure
    named = MediaError(f"task '{task.name}': {exc}")
    named.stderr_tail = getattr(exc, "stderr_tail", "")
    return named


def _result(
    task: Task,
    media: MediaInfo,
    tally: _Tally,
    mapper: FrameMapper,
    *,
    started: float,
    output: Path,
    digest: str,
    audio: bool,
) -> TaskResult:
    out_spec = task.output_spec(media)
    return TaskResult(
        name=task.name,
        frames=tally.frames,
        seconds=time.perf_counter() - started,
        output=output.name,
        frame_digest=digest,
        pid=os.getpid(),
        threads=sorted(tally.threads.union(t.name for t in threading.enumerate())),
        stages=[stage.describe() for stage in task.stages],
        decode_format=task.input_spec(media).pix_fmt.value,
        width=out_spec.width,
        height=out_spec.height,
        fps=f"{out_spec.fps.numerator}/{out_spec.fps.denominator}",
        input_bytes=media.size_bytes,
        output_bytes=output.stat().st_size,
        size_fix=task.size_fix,
        audio=media.audio_codec if audio else None,
        thumbnails=tally.thumbs,
        processes=tally.processes + mapper.processes,
        workers=mapper.workers,
        timings={
            **{k: v for k, v in tally.waits.items() if k != "encode"},
            **{f"stage {name}": spent for name, spent in mapper.stage_seconds().items()},
            "pool": mapper.wait_seconds,
            "copy": sum(w.copy_seconds for w in mapper.workers),
            "digest": tally.digest_ns / 1e9,
            **({"encode": tally.waits["encode"]} if "encode" in tally.waits else {}),
            "saves": tally.saves_ns / 1e9,
        },
        resumed_frames=tally.resumed,
    )


def run_task(
    task: Task,
    media: MediaInfo,
    out_dir: Path,
    helpers: Helpers,
    *,
    save_every: int,
    mapper_factory: MapperFactory = InlineMapper,
    pieces: Pieces | None = None,
) -> TaskResult:
    """Run `task` on `media` in the calling thread and return what it produced.

    `mapper_factory` decides where the stages run (inline by default, or a thread or process
    pool); decoding, digests, encoding, progress and saves stay in the calling thread.
    With `pieces` of more than one segment (or some done by an earlier run), the pending
    segments are encoded one after the other into pieces, each recorded in the task's
    checkpoint once finished, and all pieces are then joined without re-encoding, with the
    audio; otherwise the video is encoded straight into the output. Either way the save thread
    checkpoints the task every `save_every` frames and when it is complete.

    Raises `StageError`, `MediaError`, `SaveError` or `Interrupted` (when `helpers` is
    cancelled); whatever happens, the decoder and encoder are stopped, the stages torn down, and
    nothing is left at the output path unless it is complete. Finished pieces stay, for
    `--resume`.
    """
    started = time.perf_counter()
    pieces = pieces or Pieces(tuple(cut_segments(media, [0], out_dir, task.name)))
    done = set(pieces.done)
    previous = [s for s in pieces.segments if s.number in done]
    tally = _Tally(
        sum(piece_frames(s) for s in previous),
        [i for s in previous for i in thumbnails_in(s.first_frame, piece_frames(s), save_every)],
    )
    output = out_dir / task.output

    def checkpoint(result: TaskResult | None = None) -> None:
        state = checkpoint_state(
            task,
            media,
            frames=tally.frames,
            thumbnails=tally.thumbs,
            latest=tally.latest,
            pieces=Pieces(pieces.segments, frozenset(done)),
            result=result,
        )
        path = OutDir(out_dir).checkpoint(task.name)
        helpers.saver.submit(partial(write_checkpoint, path, state))

    helpers.progress.started(task.name, media.packets)
    helpers.progress.update(task.name, tally.frames)
    encode = partial(
        _encode, task, media, out_dir, helpers, save_every=save_every, on_save=checkpoint
    )
    try:
        with mapper_factory(task.name, task.stages, task.input_spec(media)) as mapper:
            if pieces.whole:
                digest = encode(mapper, tally, output=output, segment=None).hexdigest()
            else:
                for segment in pieces.pending:
                    segment.piece.parent.mkdir(parents=True, exist_ok=True)
                    kept = encode(mapper, tally, output=segment.piece, segment=segment).kept
                    atomic_write_bytes(digests_path(segment), kept)
                    done.add(segment.number)
                    checkpoint()
                stats = join_pieces(
                    [s.piece for s in pieces.segments],
                    output,
                    audio_from=Path(media.path) if task.keep_audio else None,
                    audio_codec=media.audio_codec,
                    label=task.name,
                )
                tally.processes += [stats] if stats else []
                digest = FrameDigest.combine([read_digests(s) for s in pieces.segments])
    except (MediaError, BrokenPipeError) as exc:
        raise _named(task, helpers, exc) from exc
    except StageError:
        # A stage's teardown may fail after the output was complete: the task failed all the
        # same, and a failed task leaves no output behind.
        output.unlink(missing_ok=True)
        raise
    result = _result(
        task, media, tally, mapper, started=started, output=output, digest=digest, audio=True
    )
    checkpoint(result)
    helpers.progress.finished(task.name, result)
    return result


def run_segment(
    task: Task,
    media: MediaInfo,
    out_dir: Path,
    helpers: Helpers,
    segment: Segment,
    *,
    save_every: int,
    mapper_factory: MapperFactory = InlineMapper,
) -> TaskResult:
    """Run `task` on one segment of `media` into the segment's piece (no audio, no checkpoint).

    The piece's per-frame digests are written beside it, for the layout that planned the
    segments to combine and checkpoint; progress counts the segment's frames.
    """
    started = time.perf_counter()
    tally = _Tally()
    segment.piece.parent.mkdir(parents=True, exist_ok=True)
    helpers.progress.started(task.name, segment.frames or media.packets)
    try:
        with mapper_factory(task.name, task.stages, task.input_spec(media)) as mapper:
            digest = _encode(
                task,
                media,
                out_dir,
                helpers,
                mapper,
                tally,
                output=segment.piece,
                segment=segment,
                save_every=save_every,
                on_save=None,
            )
            atomic_write_bytes(digests_path(segment), digest.kept)
    except (MediaError, BrokenPipeError) as exc:
        raise _named(task, helpers, exc) from exc
    except StageError:
        # A stage's teardown may fail after the piece was complete: it is not a finished piece.
        segment.piece.unlink(missing_ok=True)
        digests_path(segment).unlink(missing_ok=True)
        raise
    result = _result(
        task,
        media,
        tally,
        mapper,
        started=started,
        output=segment.piece,
        digest=digest.hexdigest(),
        audio=False,
    )
    helpers.progress.finished(task.name, result)
    return result
