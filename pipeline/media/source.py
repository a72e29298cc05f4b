"""Decoding: raw frames of the input's first video stream, read from ffmpeg."""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from .. import trace
from ..errors import MediaError, describe_exit
from ..report import ProcessStats
from ..stages.base import StreamSpec
from .ffmpeg import FFmpegProcess, url

__all__ = ["Decoder"]


class Decoder:
    """Frames of `path` as numpy arrays of `spec`, in decode order, one per decoded frame.

    `label` (the task's name) names the ffmpeg process in reports. With `start` (seconds from
    the file's start, best a keyframe's) decoding begins at that frame; with `frames` it stops
    after that many.
    Frames are read straight into a ring of `ring` preallocated buffers (or the given `buffers`,
    such as shared-memory slots): a yielded frame stays valid until `len(ring) - 1` further
    frames have been read; copy it to keep it longer. Stages may
    modify it in place. `close()` must be called (the runner does it in `finally`): it stops
    ffmpeg if frames remain unread and raises `MediaError` if ffmpeg failed.
    """

    def __init__(
        self,
        path: Path | str,
        spec: StreamSpec,
        *,
        ring: int = 3,
        buffers: list[np.ndarray] | None = None,
        label: str = "",
        start: Fraction | None = None,
        frames: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.start = start
        self.limit = frames
        self.spec = spec
        self._ring = buffers or [np.empty(spec.shape, dtype=np.uint8) for _ in range(max(2, ring))]
        self._proc: FFmpegProcess | None = None
        self.frames = 0
        self.wait_seconds = 0.0  # time spent waiting for ffmpeg to deliver frames
        self._eof = False
        self._role = f"ffmpeg-decode:{label}" if label else "ffmpeg-decode"

    #: What the process does, in error messages ("decoding failed (...)").
    doing = "decoding"
    #: The phase its waits count as, in the task's timings and the trace.
    phase = "decode"

    def __enter__(self) -> Decoder:
        self._proc = FFmpegProcess(
            [*self._input_args(), *self._raw_output_args()],
            role=self._role,
            stdin=False,
            stdout=True,
        )
        return self

    def _input_args(self) -> list[str]:
        if not self.start:
            return ["-i", url(self.path)]
        # Rounded down to ffmpeg's microseconds: the frame at `start` is kept, and the one
        # before it (a frame duration earlier) is not.
        seek = math.floor(self.start * 1_000_000) / 1_000_000
        return ["-ss", f"{seek:.6f}", "-i", url(self.path)]

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
            begin = trace.now()
            while filled < len(view):
                n = stream.readinto(view[filled:])  # type: ignore[attr-defined]
                if not n:
                    break
                filled += n
            if filled < len(view):
                self._eof = True
                if filled and not self._proc.killed:
                    if self._proc.wait() != 0:
                        how = describe_exit(self._proc.returncode)
                        raise MediaError(
                            f"{self.path}: {self.doing} failed ({how})",
                            stderr_tail=self._proc.stderr_tail(),
                        )
                    raise MediaError(f"{self.path}: {self.doing} ended inside a frame")
                return
            end = trace.now()
            self.wait_seconds += (end - begin) / 1e9
            trace.span(self.phase, "io", begin, end)
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
            proc.kill()
        proc.wait()
        if check and self._eof and proc.returncode != 0 and not proc.killed:
            how = describe_exit(proc.returncode)
            raise MediaError(
                f"{self.path}: {self.doing} failed ({how})", stderr_tail=proc.stderr_tail()
            )

    @property
    def pid(self) -> int | None:
        """The decoder ffmpeg's process id, while it runs."""
        return self._proc.pid if self._proc else None

    @property
    def stats(self) -> ProcessStats | None:
        """CPU time and peak memory of the decoder, once it has been closed."""
        return self._proc.stats if self._proc else None
