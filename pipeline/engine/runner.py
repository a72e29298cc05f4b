"""Running a task: decode -> stages -> encode, in one piece or in pieces, or one segment of it.

Every layout runs tasks through `run_task` (or, cut into segments, `run_segment`), each with a
`TaskRun` saying what to run and a `Helpers` for progress and saves; layouts differ only in
where they call it (the main thread, a thread per task, a process per task or segment) and
which frame mapper the `TaskRun` names. The frames themselves move in the loop of
`pipeline.engine.loop`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from ..errors import Interrupted, MediaError, StageError
from ..media.sink import join_pieces
from ..plan.checkpoints import checkpoint_state, thumbnails_in
from ..plan.identity import input_changed
from ..plan.manifest import stamp_of
from ..plan.outdir import atomic_write_bytes
from ..plan.pieces import Pieces, Segment, cut_segments, digests_path, piece_frames, read_digests
from ..report.results import CpuBreakdown, Phase, TaskResult
from .digest import FrameDigest
from .encode import encode
from .framemap import FrameMapper
from .helpers import Helpers
from .loop import Tally, measured
from .saves import write_checkpoint
from .taskrun import TaskRun

__all__ = ["TaskRun", "run_segment", "run_task"]


def _named(run: TaskRun, helpers: Helpers, exc: BaseException) -> BaseException:
    """The error to raise for a media failure: named after the task, the interruption, or the
    input's fault when it was removed or replaced during the run."""
    task = run.task
    if helpers.cancelled.is_set():
        return Interrupted()  # ffmpeg was killed to stop us: not its failure
    gone = input_changed(task.name, run.media.path, run.job)
    if gone is not None:
        return gone
    named = MediaError(f"task '{task.name}': {exc}")
    named.stderr_tail = getattr(exc, "stderr_tail", "")
    return named


@contextlib.contextmanager
def _mapped(run: TaskRun, helpers: Helpers, outputs: list[Path]) -> Iterator[FrameMapper]:
    """The task's frame mapper for the block; a media failure is named after the task, and a
    stage failure leaves none of the `outputs` this run wrote (a stage's teardown may fail after
    they were complete: the task failed all the same). A file that was there before, and that
    this run did not replace (the user's, under `--force`), stays."""
    task = run.task
    gone = input_changed(task.name, run.media.path, run.job)
    if gone is not None:
        raise gone  # before the stages' workers start: none is stopped while it starts
    before = {path: stamp_of(path) for path in outputs}
    try:
        with run.mapper(task.name, task.stages, task.input_spec(run.media)) as mapper:
            yield mapper
    except (MediaError, BrokenPipeError) as exc:
        raise _named(run, helpers, exc) from exc
    except StageError:
        for path, stamp in before.items():
            if stamp_of(path) != stamp:
                path.unlink(missing_ok=True)
        raise


def _result(
    run: TaskRun,
    tally: Tally,
    mapper: FrameMapper,
    *,
    started: float,
    output: Path,
    digest: str,
    audio: bool,
) -> TaskResult:
    task, media = run.task, run.media
    out_spec = task.output_spec(media)
    seconds = {
        **tally.seconds,
        Phase.POOL: mapper.wait_seconds,
        Phase.COPY: sum((w.copy_seconds for w in mapper.workers), 0.0),
        Phase.DIGEST: tally.seconds.get(Phase.DIGEST, 0.0),
        Phase.SAVES: tally.seconds.get(Phase.SAVES, 0.0),
    }
    phases = {phase: seconds[phase] for phase in Phase if phase in seconds}  # in Phase's order
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
        fps=out_spec.fps,
        input_bytes=media.size_bytes,
        output_bytes=output.stat().st_size,
        size_fix=task.size_fix,
        audio=media.audio_codec if audio else None,
        thumbnails=tally.thumbs,
        processes=tally.processes + mapper.processes,
        workers=mapper.workers,
        phase_seconds=phases,
        stage_seconds=mapper.stage_seconds(),
        resumed_frames=tally.resumed,
        in_order=mapper.in_order,
        cpu_breakdown={
            name: CpuBreakdown.of(spent)
            for name, spent in {**mapper.stage_cpu(), **tally.cpu.snapshot()}.items()
        },
    )


def _checkpointer(
    run: TaskRun, helpers: Helpers, tally: Tally, pieces: Pieces, done: set[int]
) -> Callable[..., None]:
    """A function that hands the task's checkpoint, as it is now, to the save thread."""
    path = run.out.checkpoint(run.task.name)

    def checkpoint(result: TaskResult | None = None) -> None:
        state = checkpoint_state(
            run.task,
            run.job,
            frames=tally.frames,
            thumbnails=tally.thumbs,
            latest=tally.latest,
            pieces=Pieces(pieces.segments, frozenset(done)),
            result=result,
        )
        job = partial(write_checkpoint, path, state)
        helpers.saver.submit_latest(path, measured(tally.cpu, "saves", job))

    return checkpoint


def _encode_pieces(
    run: TaskRun,
    helpers: Helpers,
    mapper: FrameMapper,
    tally: Tally,
    pieces: Pieces,
    done: set[int],
    checkpoint: Callable[..., None],
) -> str:
    """Encode the pending pieces one after the other, each recorded once finished, then join
    all of them into the output with the audio; returns the combined digest."""
    task, media = run.task, run.media
    for segment in pieces.pending:
        segment.piece.parent.mkdir(parents=True, exist_ok=True)
        digest = encode(
            run, helpers, mapper, tally, output=segment.piece, segment=segment, on_save=checkpoint
        )
        atomic_write_bytes(digests_path(segment), digest.kept)
        done.add(segment.number)
        checkpoint()
    stats = join_pieces(
        [s.piece for s in pieces.segments],
        run.out.output(task.output),
        starts=[media.frame_time(s.first_frame) for s in pieces.segments],
        audio_from=Path(media.path) if task.keep_audio else None,
        audio_codec=media.audio_codec,
        label=task.name,
    )
    tally.processes += [stats] if stats else []
    return FrameDigest.combine([read_digests(s) for s in pieces.segments])


def run_task(run: TaskRun, helpers: Helpers) -> TaskResult:
    """Run `run.task` in the calling thread and return what it produced.

    `run.mapper` decides where the stages run (inline by default, or a thread or process
    pool); decoding, digests, encoding, progress and saves stay in the calling thread.
    With pieces of more than one segment (or some done by an earlier run), the pending
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
    task, media = run.task, run.media
    pieces = run.pieces or Pieces(tuple(cut_segments(media, [0], run.out_dir, task.name)))
    done = set(pieces.done)
    previous = [s for s in pieces.segments if s.number in done]
    thumbs = thumbnails_in
    tally = Tally.resuming(
        sum(piece_frames(s) for s in previous),
        [i for s in previous for i in thumbs(s.first_frame, piece_frames(s), run.save_every)],
    )
    output = run.out.output(task.output)
    checkpoint = _checkpointer(run, helpers, tally, pieces, done)
    helpers.progress.started(task.name, media.packets)
    helpers.progress.update(task.name, tally.frames)
    with _mapped(run, helpers, [output]) as mapper:
        if pieces.whole:
            whole = encode(
                run, helpers, mapper, tally, output=output, segment=None, on_save=checkpoint
            )
            digest = whole.hexdigest()
        else:
            digest = _encode_pieces(run, helpers, mapper, tally, pieces, done, checkpoint)
    result = _result(run, tally, mapper, started=started, output=output, digest=digest, audio=True)
    checkpoint(result)
    helpers.progress.finished(task.name, result)
    return result


def run_segment(run: TaskRun, helpers: Helpers, segment: Segment) -> TaskResult:
    """Run `run.task` on one segment of its input into the segment's piece (no audio, no
    checkpoint).

    The piece's per-frame digests are written beside it, for the layout that planned the
    segments to combine and checkpoint; progress counts the segment's frames. A piece whose
    stage failed (its teardown included) is not a finished piece: it is removed.
    """
    started = time.perf_counter()
    task = run.task
    tally = Tally()
    segment.piece.parent.mkdir(parents=True, exist_ok=True)
    helpers.progress.started(task.name, segment.frames or run.media.packets)
    with _mapped(run, helpers, [segment.piece, digests_path(segment)]) as mapper:
        digest = encode(
            run, helpers, mapper, tally, output=segment.piece, segment=segment, on_save=None
        )
        atomic_write_bytes(digests_path(segment), digest.kept)
    piece, hexdigest = segment.piece, digest.hexdigest()
    result = _result(
        run, tally, mapper, started=started, output=piece, digest=hexdigest, audio=False
    )
    helpers.progress.finished(task.name, result)
    return result
