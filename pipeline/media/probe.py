"""Probing an input with the bundled ffmpeg (there is no ffprobe in imageio-ffmpeg).

One stream-copy pass (`-c copy -f framecrc`) reads every video packet without decoding: its
timestamps give the exact frame rate (29.83 fps is really 179/6), a frame estimate and the time at
which each frame is shown (kept by every output: `MediaInfo.frame_time`), while
ffmpeg's stderr header gives codec, pixel format, size, rotation and audio. Frame counts that
matter are counted as frames are decoded (`count_decoded_frames`), because headers lie.
"""

from __future__ import annotations

import re
import stat
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..stages.base import PixelFormat, StreamSpec
from .ffmpeg import run_ffmpeg, url

__all__ = ["MediaInfo", "count_decoded_frames", "probe"]


@dataclass(frozen=True)
class MediaInfo:
    """What the pipeline needs to know about an input; sizes are as decoded (rotation applied)."""

    path: str
    size_bytes: int
    container: str
    duration_seconds: float | None
    codec: str
    pix_fmt: str
    width: int
    height: int
    rotation: int
    fps: Fraction
    packets: int
    audio_codec: str | None
    #: Keyframes as (frame index in presentation order, seconds from the file's start):
    #: where a segment can start and decode exactly.
    keyframes: tuple[tuple[int, Fraction], ...] = ()
    #: The video packets' presentation timestamps, ascending, in `time_base` units from the
    #: file's start (the timeline ffmpeg gives every stream of the input, the audio's included);
    #: empty when the stream's timestamps cannot be trusted (missing or repeated).
    frame_pts: tuple[int, ...] = ()
    time_base: Fraction = Fraction(1)

    def frame_time(self, index: int) -> Fraction:
        """When frame `index` (in presentation order) is shown, in seconds from the file's
        start: its timestamp; past the known timestamps (or without them), one frame duration
        at `fps` after the previous frame."""
        known = self.frame_pts
        if index < len(known):
            return known[index] * self.time_base
        last = len(known) - 1
        return (known[last] * self.time_base if known else -1 / self.fps) + (
            index - last
        ) / self.fps

    def spec(self, pix_fmt: PixelFormat = PixelFormat.BGR24) -> StreamSpec:
        """The stream of decoded frames in `pix_fmt`."""
        return StreamSpec(self.width, self.height, self.fps, pix_fmt)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size_bytes": self.size_bytes,
            "container": self.container,
            "duration_seconds": self.duration_seconds,
            "video": {
                "codec": self.codec,
                "pix_fmt": self.pix_fmt,
                "width": self.width,
                "height": self.height,
                "rotation": self.rotation,
                "fps": f"{self.fps.numerator}/{self.fps.denominator}",
                "fps_float": round(float(self.fps), 4),
                "packets": self.packets,
                "keyframes": len(self.keyframes),
            },
            "audio": {"codec": self.audio_codec} if self.audio_codec else None,
        }


def _check_path(path: Path) -> int:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a video file")
    try:
        st = path.stat()
        # A FIFO, a device or a socket: opening one may wait for ever for a writer, and the
        # input is read more than once (probed, then decoded by each task).
        if not stat.S_ISREG(st.st_mode):
            raise InputError(
                f"{path}: not a regular file (a pipe, device or socket cannot be read twice)"
            )
        size = st.st_size
        with path.open("rb"):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from exc
    if size == 0:
        raise InputError(f"{path}: is empty")
    return size


def _split_top_level(text: str) -> list[str]:
    """Split ffmpeg's stream description on commas that are not inside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _rate_from_text(text: str) -> Fraction | None:
    """A rate printed by ffmpeg ('29.97', '25', '12.50'); NTSC-style ones become n*1000/1001."""
    try:
        value = Fraction(text)
    except ValueError:
        return None
    if value <= 0:
        return None
    ntsc = Fraction(round(value * Fraction(1001, 1000)) * 1000, 1001)
    return ntsc if abs(float(ntsc - value)) < 0.006 else value.limit_denominator(1000)


@dataclass(frozen=True)
class _PacketTiming:
    count: int
    duration_rate: Fraction | None  # from packet durations, when they are all equal
    pts_rate: Fraction | None  # from how far the timestamps advance over the whole stream
    keyframes: tuple[tuple[int, Fraction], ...] = ()  # (presentation index, pts in seconds)
    pts: tuple[int, ...] = ()  # ascending, in `unit`; empty if missing or repeated
    unit: Fraction = Fraction(1)


_KEY, _DISCARD = 1, 4  # AV_PKT_FLAG_KEY, AV_PKT_FLAG_DISCARD


def _flags(row: list[str]) -> int:
    # framecrc prints "F=0x.." only for packets whose flags are not plain "keyframe"
    flags = next((f.strip()[2:] for f in row[6:] if f.strip().startswith("F=")), None)
    return _KEY if flags is None else int(flags, 16)


def _packet_timing(crc: str) -> _PacketTiming:
    """Frame-rate evidence from the framecrc output of a stream copy."""
    tb = re.search(r"^#tb 0: (\d+)/(\d+)", crc, re.MULTILINE)
    # Packets an edit list hides (flagged "discard", before the edit's start) decode to no
    # frame: they are neither counted nor given a place among the frames.
    rows = [
        row
        for line in crc.splitlines()
        if line and not line.startswith("#") and line.count(",") >= 4
        if not _flags(row := line.split(",")) & _DISCARD
    ]
    if tb is None or not rows:
        return _PacketTiming(len(rows), None, None)
    unit = Fraction(int(tb.group(1)), int(tb.group(2)))
    durations = {int(row[3]) for row in rows}
    duration_rate = (
        1 / (unit * durations.pop()) if len(durations) == 1 and 0 not in durations else None
    )
    pts = sorted(int(row[2]) for row in rows)
    span = (pts[-1] - pts[0]) * unit
    pts_rate = (len(pts) - 1) / span if span > 0 else None
    order = {value: index for index, value in enumerate(pts)}
    keyframes = tuple(
        sorted((order[int(row[2])], int(row[2]) * unit) for row in rows if _flags(row) & _KEY)
    )
    # ffmpeg prints a missing timestamp as the most negative int64; repeated ones cannot be
    # shown one after the other either: such a stream is retimed at its frame rate.
    trusted = len(set(pts)) == len(pts) and pts[0] > -(2**62)
    return _PacketTiming(
        len(rows), duration_rate, pts_rate, keyframes, tuple(pts) if trusted else (), unit
    )


def _close(a: Fraction, b: Fraction, tolerance: float) -> bool:
    return abs(float(a / b) - 1) < tolerance


def _choose_rate(timing: _PacketTiming, header: Fraction | None) -> Fraction | None:
    """The exact frame rate, from packet durations, timestamps and ffmpeg's header.

    Equal durations that agree with how the timestamps advance are exact (MP4: 29.83 fps is
    179/6). Containers with coarse time bases (Matroska: 1 ms) round both, so there the
    header's rate wins when it agrees within 1%. Otherwise the stream has a variable rate, and
    the timestamps' average keeps its duration.
    """
    exact, average = timing.duration_rate, timing.pts_rate
    if average is None:
        return exact or header
    if exact is not None and _close(exact, average, 1e-3):
        return exact
    if header is not None and _close(header, average, 0.01):
        return header
    return average.limit_denominator(100_000)


def _input_problem(path: Path, stderr: str) -> InputError:
    if "matches no streams" in stderr:
        return InputError(f"{path}: has no video stream")
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    reason = lines[-1] if lines else "ffmpeg could not read it"
    reason = reason.replace(f"{url(path)}: ", "").replace(f"{path}: ", "")
    return InputError(f"{path}: not a readable video ({reason})")


def probe(path: Path | str) -> MediaInfo:
    """Describe `path`'s first video stream and its audio, or raise `InputError` saying why not."""
    path = Path(path)
    size = _check_path(path)
    try:
        done = run_ffmpeg(["-i", url(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"])
    except subprocess.TimeoutExpired as exc:
        raise InputError(f"{path}: probing did not finish in {exc.timeout:.0f} s") from exc
    stderr = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise _input_problem(path, stderr)
    video = re.search(r"Stream #0:\d+.*?: Video: (.*)", stderr)
    if video is None:
        raise InputError(f"{path}: has no video stream")
    parts = _split_top_level(video.group(1))
    codec = parts[0].split()[0]
    pix_fmt = next((m.group(0) for p in parts[1:2] if (m := re.match(r"[a-z0-9_]+", p))), "?")
    size_match = next((m for p in parts if (m := re.match(r"(\d+)x(\d+)", p))), None)
    if size_match is None:
        raise InputError(f"{path}: video stream has no frame size")
    width, height = int(size_match.group(1)), int(size_match.group(2))
    rotation_match = re.search(r"rotation of (-?[\d.]+) degrees", stderr)
    rotation = round(float(rotation_match.group(1))) if rotation_match else 0
    if rotation % 180 != 0:  # ffmpeg auto-rotates while decoding: frames come out turned
        width, height = height, width
    timing = _packet_timing(done.stdout.decode(errors="replace"))
    packets = timing.count
    fps = _choose_rate(
        timing,
        _rate_from_text(
            next((p.split()[0] for p in parts if p.endswith(" fps") or p.endswith(" tbr")), "")
        ),
    )
    if fps is None:
        raise InputError(f"{path}: cannot tell the video's frame rate")
    audio = re.search(r"Stream #0:\d+.*?: Audio: (\w+)", stderr)
    container = re.search(r"Input #0, (.+?), from", stderr)
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", stderr)
    return MediaInfo(
        path=str(path),
        size_bytes=size,
        container=container.group(1) if container else "?",
        duration_seconds=(
            int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3))
            if duration
            else None
        ),
        codec=codec,
        pix_fmt=pix_fmt,
        width=width,
        height=height,
        rotation=rotation,
        fps=fps,
        packets=packets,
        audio_codec=audio.group(1) if audio else None,
        # framecrc's timestamps already start at the file's start, as -ss positions do.
        keyframes=timing.keyframes,
        frame_pts=timing.pts,
        time_base=timing.unit,
    )


def count_decoded_frames(path: Path | str) -> int:
    """Decode the first video stream fully and count its frames (what every layout will see)."""
    done = run_ffmpeg(
        [
            "-loglevel",
            "error",
            "-i",
            url(path),
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-f",
            "framecrc",
            "-",
        ]
    )
    if done.returncode != 0:
        raise _input_problem(Path(path), done.stderr.decode(errors="replace"))
    return sum(1 for line in done.stdout.splitlines() if line and not line.startswith(b"#"))
