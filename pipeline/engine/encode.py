"""Encoding one range of a task: its source and sink started, its frames pumped through the
loop to the observers, and the output promoted once complete."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from functools import partial
from pathlib import Path

from ..errors import Interrupted, MediaError
from ..media.sink import Encoder
from ..media.source import Decoder, Reading
from ..media.transcode import Transcoder
from ..plan.identity import input_changed
from ..plan.pieces import Segment
from ..report.results import Phase
from .digest import FrameDigest
from .framemap import FrameMapper
from .helpers import Helpers
from .loop import (
    CensusObserver,
    DigestObserver,
    FaultObserver,
    FrameObserver,
    ProgressObserver,
    SaveObserver,
    Tally,
    pump,
)
from .taskrun import TaskRun

__all__ = ["encode"]


def _kill(pid: int | None) -> None:
    """Kill a process from outside, as a crash would (fault injection)."""
    if pid is not None:
        os.kill(pid, signal.SIGKILL)


def _open(
    stack: contextlib.ExitStack,
    run: TaskRun,
    mapper: FrameMapper,
    output: Path,
    segment: Segment | None,
) -> tuple[Decoder, Encoder | Transcoder]:
    """Start the source and the sink of one range: a decoder and an encoder, or, for a task no
    stage changes, one ffmpeg that decodes and encodes (and shows us the frames). Audio is
    muxed only when the whole video goes straight to the task's output. Either way each frame
    is encoded at its presentation time in the input (`MediaInfo.frame_time`). `InputError`
    when the input was removed or replaced since the job started: its frames would be another
    job's."""
    task, media = run.task, run.media
    changed = input_changed(task.name, media.path, run.job)
    if changed is not None:
        raise changed
    keep_audio = task.keep_audio and segment is None
    first = segment.first_frame if segment else 0
    reading = Reading(
        ring=mapper.window + 2,
        buffers=mapper.buffers(),
        label=task.name,
        start=segment.seek if segment else None,
        frames=segment.frames if segment else None,
    )
    if not task.stages:
        audio = media.audio_codec if keep_audio else None
        transcoder = Transcoder(
            media.path,
            task.input_spec(media),
            task.encoder,
            output,
            audio_codec=audio,
            reading=reading,
            start=media.frame_time(first),
        )
        both = stack.enter_context(transcoder)
        return both, both
    decoder = stack.enter_context(Decoder(media.path, task.input_spec(media), reading))
    encoder = Encoder(
        output,
        task.output_spec(media),
        task.encoder,
        audio_from=Path(media.path) if keep_audio else None,
        audio_codec=media.audio_codec,
        label=task.name,
        times=lambda k: media.frame_time(first + k),
    )
    return decoder, stack.enter_context(encoder)


def _observers(
    run: TaskRun,
    helpers: Helpers,
    tally: Tally,
    digest: FrameDigest,
    first: int,
    on_save: Callable[[], None] | None,
    media: tuple[Decoder, Encoder | Transcoder],
) -> list[FrameObserver]:
    task = run.task
    fmt = task.output_spec(run.media).pix_fmt
    observers: list[FrameObserver] = [
        DigestObserver(digest, tally),
        ProgressObserver(helpers, task.name, tally, first),
        CensusObserver(tally),
        SaveObserver(helpers, run.out, task.name, run.save_every, fmt, tally, on_save),
    ]
    if FaultObserver.wanted():
        decoder, encoder = media
        kill_decoder, kill_encoder = partial(_kill, decoder.pid), partial(_kill, encoder.pid)
        observers.append(FaultObserver(task.name, kill_decoder, kill_encoder))
    return observers


def encode(
    run: TaskRun,
    helpers: Helpers,
    mapper: FrameMapper,
    tally: Tally,
    *,
    output: Path,
    segment: Segment | None,
    on_save: Callable[[], None] | None,
) -> FrameDigest:
    """Decode `segment` (or the whole video), map it through the stages, encode it to `output`.

    Thumbnails go to the save thread every `save_every` frames, with `on_save` (a checkpoint)
    after them. The output appears only once complete and every save has been written.
    """
    first = segment.first_frame if segment else 0
    digest = FrameDigest(keep=segment is not None)
    before = tally.frames
    with contextlib.ExitStack() as stack:
        decoder, encoder = _open(stack, run, mapper, output, segment)
        observers = _observers(run, helpers, tally, digest, first, on_save, (decoder, encoder))
        pump(mapper.map(iter(decoder), first), encoder, observers, helpers.cancelled)
        decoder.close()
        if helpers.cancelled.is_set():
            raise Interrupted()
        if tally.frames == before:
            raise MediaError(f"{run.media.path}: no frame could be decoded")
        helpers.saver.flush()  # a run whose saves failed does not promote its output
        encoder.finish()
    tally.add(Phase(decoder.phase), decoder.wait_seconds)
    tally.cpu.merge({decoder.phase: decoder.cpu})
    tally.processes += [decoder.stats] if decoder.stats else []
    if encoder is not decoder:  # a separate encoder ffmpeg (a Transcoder is both)
        tally.add(Phase.ENCODE, encoder.wait_seconds)
        tally.cpu.merge({Phase.ENCODE.value: encoder.cpu})
        tally.processes += [encoder.stats] if encoder.stats else []
    return digest
