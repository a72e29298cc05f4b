"""Transcoding in one ffmpeg: for tasks whose frames no stage changes.

A `Decoder` feeding an `Encoder` moves every frame out of one ffmpeg process and into another:
two more trips through a pipe and a second ffmpeg, about 8% of the wall time of a 720p
re-encode on two cores (docs/performance.md). When nothing in Python changes the frames, the
`Transcoder` lets one ffmpeg decode and encode, and streams the decoded frames to Python only to
be looked at: digests, thumbnails and progress see exactly what the encoder gets.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from ..config.settings import EncoderSettings
from ..stages.base import StreamSpec
from .ffmpeg import FFmpegProcess
from .sink import PartialOutput, audio_codec_for_mp4, h264_output_args
from .source import Decoder, Reading
from .timed import MICROSECONDS

__all__ = ["Transcoder"]


class Transcoder(Decoder):
    """Decode `path` and encode it to `output` in one ffmpeg, yielding the decoded frames.

    Frames come out as from a `Decoder` of `spec` (same frames, same buffers, same rules), while
    the same process encodes them as an `Encoder` of `spec` fed those frames would: same
    settings, and each frame at its presentation time, the first at `start` seconds from the
    input's start (where the range begins; the frames after it as far apart as the input shows
    them). With `audio_codec`, the input's first audio stream is muxed too.

    `write()` does nothing (ffmpeg already has the frame); after `close()`, `finish()` moves
    the complete file into place. Leaving the `with` block without `finish()` kills ffmpeg and
    removes the partial file, so `output` only ever holds a complete file.
    """

    doing = "transcoding"
    phase = "transcode"

    def __init__(
        self,
        path: Path | str,
        spec: StreamSpec,
        settings: EncoderSettings,
        output: Path,
        *,
        audio_codec: str | None = None,
        reading: Reading | None = None,
        start: Fraction = Fraction(0),
    ) -> None:
        super().__init__(path, spec, reading)
        self.first_time = start
        self.output = output
        self._out = PartialOutput(output)
        self.settings = settings
        self.audio_codec = audio_codec

    def __enter__(self) -> Transcoder:
        video = [*("-map", "0:v:0", *self._limit_args(), "-fps_mode", "passthrough")]
        # ffmpeg's times start at the seek position (or at a cut's start): the first frame is
        # put back at its time in the input, the others keep their distance from it.
        start = f"{round(self.first_time * MICROSECONDS)}/{MICROSECONDS}"
        video += ["-vf", f"setpts=PTS-STARTPTS+round({start}/TB)"]
        audio = []
        if self.audio_codec:
            audio = ["-map", "0:a:0", "-c:a", audio_codec_for_mp4(self.audio_codec)]
        self._proc = FFmpegProcess(
            [
                *("-y", *self._input_args()),
                *video,
                *audio,
                *h264_output_args(self.settings, self._out.partial),
                *self._raw_output_args(),
            ],
            role=self._role,
            stdin=False,
            stdout=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            if not self._out.settled:
                self.abort()

    def write(self, frame: np.ndarray) -> None:
        """Nothing to do: the frame is one this process decoded, and is encoding."""

    def finish(self) -> None:
        """Once closed, check that ffmpeg succeeded and move the complete file into place."""
        self.close()
        assert self._proc is not None
        self._out.promote(self._proc, "transcoding")

    def abort(self) -> None:
        """Kill ffmpeg and remove the partial file; nothing is left at `output`."""
        self._out.discard(self._proc)
