"""Decoding: raw frames of the input's first video stream, read from ffmpeg."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import MediaError
from ..instrument import cpuclock
from ..instrument.cpuclock import CpuTime
from ..stages.base import StreamSpec
from .ffmpeg import FFmpegProcess, UsesFFmpeg, seek_args, url

__all__ = ["Decoder", "Reading"]


@dataclass(frozen=True)
class Reading:
    """How a decoder reads: into a ring of `ring` buffers of its own, or into `buffers` (such as
    shared-memory slots); from `start` seconds from the file's start (best a keyframe's; None:
    the start); at most `frames` frames (None: to the end). `label` (a task's name) names its
    ffmpeg process in reports."""

    ring: int = 3
    buffers: list[np.ndarray] | None = None
    label: str = ""
    start: Fraction | None = None
    frames: int | None = None


class Decoder(UsesFFmpeg):
    """Frames of `path` as numpy arrays of `spec`, in decode order, one per decoded frame, read
    as `reading` says.

    Frames are read straight into the ring of preallocated buffers (or the given buffers, such
    as shared-memory slots): a yielded frame stays valid until `len(ring) - 1` further frames
    have been read; copy it to keep it longer. Stages may modify it in place. `close()` must be
    called (the runner does it in `finally`): it stops ffmpeg if frames remain unread and raises
    `MediaError` if ffmpeg failed.
    """

    def __init__(self, path: Path | str, spec: StreamSpec, reading: Reading | None = None) -> None:
        reading = reading or Reading()
        self.path = Path(path)
        self.start = reading.start
        self.limit = reading.frames
        self.spec = spec
        count = max(2, reading.ring)
        self._ring = reading.buffers or [np.empty(spec.shape, np.uint8) for _ in range(count)]
        self.frames = 0
        self.cpu = CpuTime()  # reading frames out of the pipe
        self._eof = False
        self._role = self._role_of(reading.label)

    #: What the process does, in error messages ("decoding failed (...)").
    doing = "decoding"
    #: The phase its waits count as, in the task's timings and the trace.
    phase = "decode"

    @classmethod
    def _role_of(cls, label: str) -> str:
        """The ffmpeg process's role in reports: `ffmpeg-decode:<task>`."""
        kind = "ffmpeg-" + cls.phase
        return f"{kind}:{label}" if label else kind

    def __enter__(self) -> Decoder:
        self._proc = FFmpegProcess(
            [*self._input_args(), *self._raw_output_args()],
            role=self._role,
            stdin=False,
            stdout=True,
        )
        return self

    def _input_args(self) -> list[str]:
        return [*seek_args(self.start), "-i", url(self.path)]

    def _limit_args(self) -> list[str]:
        return ["-frames:v", str(self.limit)] if self.limit is not None else []

    def _raw_output_args(self) -> list[str]:
        """The output that streams the frames to us: every decoded frame, none dropped or
        repeated (`passthrough`), as raw `spec.pix_fmt`."""
        return [
            *("-map", "0:v:0", *self._limit_args(), "-fps_mode", "passthrough"),
            *("-f", "rawvideo", "-pix_fmt", self.spec.pix_fmt.value, "-"),
        ]

    def __exit__(self, *exc: object) -> None:
        self.close(check=exc[0] is None)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._proc is None:
            raise RuntimeError("Decoder used outside its 'with' block")
        stream = self._proc.stdout
        while True:
            buffer = self._ring[self.frames % len(self._ring)]
            view = buffer.reshape(-1).data
            filled = 0
            begin = cpuclock.read()
            while filled < len(view):
                n = stream.readinto(view[filled:])  # type: ignore[attr-defined]
                if not n:
                    break
                filled += n
            if filled < len(view):
                self._eof = True
                if filled and not self._proc.killed:
                    self._proc.check(f"{self.path}: {self.doing}")
                    raise MediaError(f"{self.path}: {self.doing} ended inside a frame")
                return
            self._on_pipe(self.phase, begin)
            self.frames += 1
            yield buffer

    def close(self, *, check: bool = True) -> None:
        """Stop ffmpeg if it is still running; with `check`, raise if it failed.

        A decoder closed before the end of the stream is killed and its exit status ignored:
        we stopped reading on purpose.
        """
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if not self._eof:
            proc.stop()
        elif check and not proc.killed:
            proc.check(f"{self.path}: {self.doing}")
        else:
            proc.wait()
