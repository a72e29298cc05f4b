"""Encoding: raw frames into an H.264 MP4 with libx264, written atomically."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..config.settings import EncoderSettings
from ..errors import MediaError, describe_exit
from ..instrument import cpuclock
from ..instrument.cpuclock import CpuTime
from ..instrument.procstats import ProcessStats
from ..plan.outdir import partial_path
from ..stages.base import StreamSpec
from .ffmpeg import FFmpegProcess, UsesFFmpeg, url
from .timed import MICROSECONDS, frame_header, stream_header

__all__ = [
    "Encoder",
    "PartialOutput",
    "audio_codec_for_mp4",
    "h264_output_args",
    "join_pieces",
]

# Audio codecs the MP4 muxer takes as they are; anything else is re-encoded to AAC.
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus"}


class PartialOutput:
    """A file an ffmpeg writes at `partial_path(path)`, which appears at `path` only once
    complete."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = partial_path(path)
        # A new file, never the old one's inode: an ffmpeg of a killed run that still held it
        # would go on writing into what this run renames into place.
        self.partial.unlink(missing_ok=True)
        self.settled = False  # promoted or discarded

    def promote(self, proc: FFmpegProcess, doing: str) -> None:
        """Wait for `proc`; raise `MediaError` ("<name>: <doing> failed (...)") if it failed,
        else move the complete file into place."""
        proc.check(f"{self.path.name}: {doing}")
        self.partial.replace(self.path)
        self.settled = True

    def discard(self, proc: FFmpegProcess | None) -> None:
        """Kill `proc` if it still runs and remove the partial file; nothing is left at `path`."""
        if proc is not None:
            proc.stop()
        self.partial.unlink(missing_ok=True)
        self.settled = True


class Encoder(UsesFFmpeg):
    """Encode frames of `spec` to `path`, optionally muxing the first audio stream of `audio_from`.

    The k-th frame written is shown at `times(k)` seconds (on the timeline of `audio_from`,
    which its audio keeps; by default k / fps): frames keep the presentation times they had in
    the input, a variable frame rate and a late start included.

    ffmpeg writes to `partial_path(path)`; `finish()` renames it to `path` once ffmpeg has exited
    cleanly, so `path` only ever holds a complete file. `abort()` (also on leaving the `with`
    block after an error) kills ffmpeg and removes the partial file.
    """

    def __init__(
        self,
        path: Path,
        spec: StreamSpec,
        settings: EncoderSettings,
        *,
        audio_from: Path | None = None,
        audio_codec: str | None = None,
        label: str = "",
        times: Callable[[int], Fraction] | None = None,
    ) -> None:
        self.path = path
        self._out = PartialOutput(path)
        self._times = times or (lambda k: k / spec.fps)
        self._written = 0
        self._last = -1  # the last frame's time in microseconds from the first's
        self._first = 0
        self.spec = spec
        self.settings = settings
        self.audio_from = audio_from if audio_codec else None
        self.audio_codec = audio_codec
        self.cpu = CpuTime()  # handing frames to ffmpeg through the pipe
        self._role = f"ffmpeg-encode:{label}" if label else "ffmpeg-encode"

    def __enter__(self) -> Encoder:
        # The stream's times count from its first frame; -itsoffset puts that frame back at
        # its time (a stream's own start is what ffmpeg takes off every input).
        self._first = _microseconds(self._times(0))
        args = ["-y", "-itsoffset", f"{self._first}us", "-f", "matroska", "-i", "-"]
        args += _audio_args(self.audio_from, self.audio_codec)
        args += ["-fps_mode", "passthrough", *h264_output_args(self.settings, self._out.partial)]
        self._proc = FFmpegProcess(args, role=self._role, stdin=True, stdout=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._out.settled:
            self.abort()

    def write(self, frame: np.ndarray) -> None:
        """Hand one frame to the encoder; raises `MediaError` if ffmpeg has died."""
        assert self._proc is not None
        view = np.ascontiguousarray(frame).data.cast("B")
        stream = self._proc.stdin
        begin = cpuclock.read()
        try:
            for chunk in (memoryview(self._frame_header(len(view))), view):
                while chunk:
                    written = stream.write(chunk)
                    chunk = chunk[written or 0 :]
            self._on_pipe("encode", begin)
        except BrokenPipeError:
            self._proc.wait()
            raise MediaError(
                f"{self.path.name}: encoder stopped ({self._exit()})",
                stderr_tail=self._proc.stderr_tail(),
            ) from None

    def _frame_header(self, size: int) -> bytes:
        """What goes before the next frame: the stream's header first, then the frame's time
        (kept after the previous frame's even when both round to one microsecond)."""
        opening = stream_header(self.spec) if self._written == 0 else b""
        shown = max(_microseconds(self._times(self._written)) - self._first, self._last + 1)
        self._written += 1
        self._last = shown
        return opening + frame_header(shown, size)

    def finish(self) -> None:
        """Close the stream, wait for ffmpeg, and move the complete file into place."""
        assert self._proc is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        self._out.promote(self._proc, "encoding")

    def abort(self) -> None:
        """Kill ffmpeg and remove the partial file; nothing is left at `path`."""
        self._out.discard(self._proc)

    def _exit(self) -> str:
        assert self._proc is not None
        return describe_exit(self._proc.returncode)


def h264_output_args(settings: EncoderSettings, partial: Path) -> list[str]:
    """ffmpeg output options that encode video with `settings` into the MP4 `partial`, each
    frame at its own time (in the input stream's time base, not rounded to a frame rate's)."""
    s = settings
    return [
        *("-c:v", "libx264", "-preset", s.preset, "-crf", str(s.crf), "-enc_time_base:v", "demux"),
        *("-threads", str(s.threads), "-pix_fmt", "yuv420p"),
        *("-movflags", "+faststart", "-f", "mp4", url(partial)),
    ]


def _microseconds(seconds: Fraction) -> int:
    return round(seconds * MICROSECONDS)


def audio_codec_for_mp4(audio_codec: str) -> str:
    """How an audio stream goes into MP4: copied when the muxer takes it, else as AAC."""
    return "copy" if audio_codec in _MP4_AUDIO else "aac"


def _audio_args(audio_from: Path | None, audio_codec: str | None) -> list[str]:
    if audio_from is None or audio_codec is None:
        return []
    codec = audio_codec_for_mp4(audio_codec)
    return ["-i", url(audio_from), "-map", "0:v:0", "-map", "1:a:0", "-c:a", codec]


def _concat_quote(name: str) -> str:
    """`name` quoted for a concat list: in single quotes, a quote as `'\\''` (as in a shell)."""
    if "\n" in name or "\r" in name:
        raise ValueError(f"a concat list cannot name {name!r}")
    return "'" + name.replace("'", "'\\''") + "'"


def _concat_list(pieces: list[Path], folder: Path, starts: list[Fraction]) -> str:
    """The concat demuxer's list of `pieces`, named relative to `folder`; with `starts`, each
    piece but the last lasts (`duration`) until the next one's first frame."""
    lines = []
    for n, piece in enumerate(pieces):
        lines.append(f"file {_concat_quote(os.path.relpath(piece, folder))}\n")
        if n + 1 < len(starts):
            lines.append(f"duration {_microseconds(starts[n + 1] - starts[n])}us\n")
    return "".join(lines)


def join_pieces(
    pieces: list[Path],
    path: Path,
    *,
    starts: Sequence[Fraction] = (),
    audio_from: Path | None = None,
    audio_codec: str | None = None,
    label: str = "",
) -> ProcessStats | None:
    """Join H.264 pieces into `path` without re-encoding, muxing the audio of `audio_from`.

    Uses ffmpeg's concat demuxer with stream copy; written to `partial_path(path)` and renamed
    when complete. The list of pieces is written beside the first, naming each relative to it
    (and quoted as the concat demuxer reads quotes), so that no character of the folders'
    names can break it. `starts` (when given, one per piece) are the times in seconds at which
    each piece's first frame is shown: each piece lasts until the next one starts, and the
    first starts at its time, so that every frame keeps its time in the input (on the timeline
    of `audio_from`). Returns the joining ffmpeg's stats; raises `MediaError` if it fails.
    """
    listing = pieces[0].parent / "join.txt"
    partial = partial_path(path)
    for stale in (listing, partial):  # new files, never those a killed run's join may hold
        stale.unlink(missing_ok=True)
    listing.write_text(_concat_list(pieces, listing.parent, list(starts)))
    # The concat demuxer starts the first piece at 0: -itsoffset puts it back at its time.
    offset = ["-itsoffset", f"{_microseconds(starts[0])}us"] if starts else []
    args = ["-y", *offset, "-f", "concat", "-i", url(listing)]
    args += _audio_args(audio_from, audio_codec)
    args += ["-c:v", "copy", "-movflags", "+faststart", "-f", "mp4", url(partial)]
    try:
        with FFmpegProcess(args, role=f"ffmpeg-join:{label}", stdin=False, stdout=False) as proc:
            proc.check(f"{path.name}: joining {len(pieces)} pieces")
            partial.replace(path)
    finally:
        listing.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    return proc.stats
