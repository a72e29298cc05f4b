"""Encoding: raw frames into an H.264 MP4 with libx264, written atomically."""

from __future__ import annotations

import contextlib
import os
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
    ) -> None:
        self.path = path
        self._out = PartialOutput(path)
        self.spec = spec
        self.settings = settings
        self.audio_from = audio_from if audio_codec else None
        self.audio_codec = audio_codec
        self.cpu = CpuTime()  # handing frames to ffmpeg through the pipe
        self._role = f"ffmpeg-encode:{label}" if label else "ffmpeg-encode"

    def __enter__(self) -> Encoder:
        spec, s = self.spec, self.settings
        args = ["-y", "-f", "rawvideo", "-pix_fmt", spec.pix_fmt.value]
        args += ["-s", f"{spec.width}x{spec.height}"]
        args += ["-framerate", f"{spec.fps.numerator}/{spec.fps.denominator}", "-i", "-"]
        args += _audio_args(self.audio_from, self.audio_codec)
        args += h264_output_args(s, self._out.partial)
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
            while view:
                written = stream.write(view)
                view = view[written or 0 :]
            self._on_pipe("encode", begin)
        except BrokenPipeError:
            self._proc.wait()
            raise MediaError(
                f"{self.path.name}: encoder stopped ({self._exit()})",
                stderr_tail=self._proc.stderr_tail(),
            ) from None

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
    """ffmpeg output options that encode video with `settings` into the MP4 `partial`."""
    s = settings
    return [
        *("-c:v", "libx264", "-preset", s.preset, "-crf", str(s.crf)),
        *("-threads", str(s.threads), "-pix_fmt", "yuv420p"),
        *("-movflags", "+faststart", "-f", "mp4", url(partial)),
    ]


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


def join_pieces(
    pieces: list[Path],
    path: Path,
    *,
    audio_from: Path | None = None,
    audio_codec: str | None = None,
    label: str = "",
) -> ProcessStats | None:
    """Join H.264 pieces into `path` without re-encoding, muxing the audio of `audio_from`.

    Uses ffmpeg's concat demuxer with stream copy; written to `partial_path(path)` and renamed
    when complete. The list of pieces is written beside the first, naming each relative to it
    (and quoted as the concat demuxer reads quotes), so that no character of the folders'
    names can break it. Returns the joining ffmpeg's stats; raises `MediaError` if it fails.
    """
    listing = pieces[0].parent / "join.txt"
    partial = partial_path(path)
    names = (os.path.relpath(p, listing.parent) for p in pieces)
    listing.write_text("".join(f"file {_concat_quote(name)}\n" for name in names))
    args = ["-y", "-f", "concat", "-i", url(listing)]
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
