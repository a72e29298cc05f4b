"""Cutting: a segment's packets copied out of the input, without re-encoding.

A cut is what a node without the input needs to decode a segment exactly: the packets from the
segment's keyframe on, in a container of their own. Decoding the cut from its start gives the
segment's frames, then a few more (packets reordered for B-frames are copied with a margin);
the decoder stops after the segment's frame count.
"""

from __future__ import annotations

from pathlib import Path

from ..plan.pieces import Segment
from .ffmpeg import FFmpegProcess, seek_args, url
from .probe import MediaInfo

__all__ = ["REORDER_MARGIN", "cut_segment"]

#: Packets copied past a segment's last frame: frames reordered for B-frames (x264 uses at most
#: 16 reference frames) are stored after later frames, so they would be missing without them.
REORDER_MARGIN = 32


def cut_segment(media: MediaInfo, segment: Segment, dest: Path) -> Path:
    """Copy the video packets of `segment` from `media` into `dest` (Matroska); returns `dest`.

    Matroska takes every codec we decode and keeps rotation metadata. Raises `MediaError` if
    ffmpeg fails.
    """
    limit = []
    if segment.frames is not None:
        limit = ["-frames:v", str(segment.frames + REORDER_MARGIN)]
    args = [*seek_args(segment.seek), "-i", url(media.path), "-map", "0:v:0", "-c", "copy"]
    args += [*limit, "-y", "-f", "matroska", url(dest)]
    with FFmpegProcess(args, role="ffmpeg-cut", stdin=False, stdout=False) as proc:
        proc.check(f"{media.path}: cutting segment {segment.number}")
    return dest
