"""Segments: contiguous frame ranges of the input, cut at keyframes, encoded as separate pieces.

A segment starts at a keyframe, so it decodes exactly on its own (ffmpeg seeks to it and decodes
forward), and its frames keep their indices in the whole video, so stages that depend on the
index (the animation's timecode) produce the same frames as a serial run. Pieces are joined
without re-encoding (`pipeline.media.sink.join_pieces`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .media.probe import MediaInfo

__all__ = ["Segment", "pieces_dir", "plan_segments"]


@dataclass(frozen=True)
class Segment:
    """Frames `first_frame` .. `first_frame + frames - 1` of the input, encoded into `piece`."""

    number: int
    first_frame: int
    frames: int | None  # None: to the end of the stream
    seek: Fraction | None  # seconds from the file's start of `first_frame`; None: the start
    piece: Path


def pieces_dir(out_dir: Path, task: str) -> Path:
    """Where a task's pieces are kept until they are joined."""
    return out_dir / ".pieces" / task


def plan_segments(media: MediaInfo, count: int, out_dir: Path, task: str) -> list[Segment]:
    """Up to `count` segments of about equal length, each starting at a keyframe.

    Fewer when the video has fewer keyframes than that; one (the whole video) when it has none
    besides the first.
    """
    starts = {0}
    keys = [k for k in media.keyframes if k[0] > 0]
    total = max(media.packets, 1)
    for i in range(1, count):
        if keys:
            target = i * total / count
            starts.add(min(keys, key=lambda k: abs(k[0] - target))[0])
    ordered = sorted(starts)
    seek = dict(media.keyframes)
    folder = pieces_dir(out_dir, task)
    return [
        Segment(
            number=n,
            first_frame=first,
            frames=ordered[n + 1] - first if n + 1 < len(ordered) else None,
            seek=seek.get(first) if first else None,
            piece=folder / f"{n:04d}.mp4",
        )
        for n, first in enumerate(ordered)
    ]
