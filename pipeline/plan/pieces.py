"""Segments: contiguous frame ranges of the input, cut at keyframes, encoded as separate pieces.

A segment starts at a keyframe, so it decodes exactly on its own (ffmpeg seeks to it and decodes
forward), and its frames keep their indices in the whole video, so stages that depend on the
index (the animation's timecode) produce the same frames as a serial run. Pieces are joined
without re-encoding (`pipeline.media.sink.join_pieces`). Next to each finished piece lie the
digests of its frames (`digests_path`), from which the digest of the whole video is
combined, also when its pieces were made by different runs (`--resume`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..media.probe import MediaInfo
from .outdir import PIECE_NAMES, OutDir, remove_own_files

__all__ = [
    "DIGEST_SIZE",
    "Pieces",
    "Segment",
    "cut_segments",
    "digests_path",
    "piece_frames",
    "plan_pieces",
    "plan_segments",
    "read_digests",
    "remove_pieces",
    "segment_starts",
]

#: Bytes of one frame's digest (xxh3, 128 bits: see `pipeline.engine.digest`).
DIGEST_SIZE = 16


@dataclass(frozen=True)
class Segment:
    """Frames `first_frame` .. `first_frame + frames - 1` of the input, encoded into `piece`."""

    number: int
    first_frame: int
    frames: int | None  # None: to the end of the stream
    seek: Fraction | None  # seconds from the file's start of `first_frame`; None: the start
    piece: Path


@dataclass(frozen=True)
class Pieces:
    """How a task's output is made: its segments, and those an earlier run already finished.

    A task of one segment, none of it done, is encoded straight into its output; any other is
    encoded piece by piece into its pieces folder (`OutDir.pieces`), each piece recorded in the
    task's checkpoint when finished, and the pieces joined at the end.
    """

    segments: tuple[Segment, ...]
    done: frozenset[int] = frozenset()

    @property
    def whole(self) -> bool:
        """True when the task is one piece, made in one go straight into the output."""
        return len(self.segments) == 1 and not self.done

    @property
    def pending(self) -> list[Segment]:
        """The segments still to encode, in order."""
        return [s for s in self.segments if s.number not in self.done]


def digests_path(segment: Segment) -> Path:
    """Where the per-frame digests of a finished piece are kept."""
    return segment.piece.with_suffix(".digests")


def read_digests(segment: Segment) -> bytes:
    """The per-frame digests of a finished piece (`DIGEST_SIZE` bytes a frame)."""
    return digests_path(segment).read_bytes()


def piece_frames(segment: Segment) -> int:
    """The number of frames in a finished piece, from its digests."""
    return digests_path(segment).stat().st_size // DIGEST_SIZE


def remove_pieces(out_dir: Path, task: str) -> None:
    """Remove a task's pieces (the files vidpipe names as its pieces, nothing else), their
    folder once empty, and the pieces folder once no task has any left."""
    folder = OutDir(out_dir).pieces(task)
    remove_own_files(folder, PIECE_NAMES)
    with contextlib.suppress(OSError):  # missing, or another task's pieces are still there
        folder.parent.rmdir()


def cut_segments(
    media: MediaInfo, starts: Iterable[int], out_dir: Path, task: str
) -> list[Segment]:
    """Segments beginning at the frames `starts` (keyframes, 0 included), to the stream's end."""
    ordered = sorted(set(starts) | {0})
    seek = dict(media.keyframes)
    folder = OutDir(out_dir).pieces(task)
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


def segment_starts(keyframes: Sequence[int], total: int, count: int) -> list[int]:
    """The first frames of up to `count` segments of about equal length among `total` frames,
    each at one of `keyframes` (frame indices) or at frame 0."""
    keys = sorted(k for k in keyframes if k > 0)
    starts = {0}
    count = min(count, len(keys) + 1)  # no more segments than keyframes to start them at
    for i in range(1, count):
        target = i * max(total, 1) / count
        starts.add(min(keys, key=lambda k: abs(k - target)))
    return sorted(starts)


def plan_segments(media: MediaInfo, count: int, out_dir: Path, task: str) -> list[Segment]:
    """Up to `count` segments of about equal length, each starting at a keyframe.

    Fewer when the video has fewer keyframes than that; one (the whole video) when it has none
    besides the first.
    """
    keys = [k[0] for k in media.keyframes]
    return cut_segments(media, segment_starts(keys, media.packets, count), out_dir, task)


def plan_pieces(media: MediaInfo, every: int, out_dir: Path, task: str) -> list[Segment]:
    """Segments of at least `every` frames, each cut at the first keyframe that allows it.

    `every` 0 makes one segment. The last segment may be shorter; it is merged into the one
    before when that would leave it under half of `every`.
    """
    if every <= 0:
        return cut_segments(media, [0], out_dir, task)
    starts = [0]
    for index, _seconds in media.keyframes:
        if index - starts[-1] >= every and media.packets - index >= every // 2:
            starts.append(index)
    return cut_segments(media, starts, out_dir, task)
