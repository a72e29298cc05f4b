#!/usr/bin/env python3
"""Synthesise a test clip of any size and length with ffmpeg's test sources.

    python scripts/make_sample.py OUT.mp4 [--size 320x240] [--frames 50] [--fps 25]
        [--audio] [--codec libx264] [--pix-fmt yuv420p]

The picture is ffmpeg's `testsrc2` (moving colour bars and a frame counter), the audio a sine
tone. The container follows OUT's extension (.mp4, .mkv, .webm, .avi, .mov, .ts). A keyframe
comes at least every 2 seconds (every `--gop` frames when given), so that the `segments`
layout can cut the clip.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg

#: Longest time between keyframes when no `gop` is given.
KEYFRAME_SECONDS = 2


def make_sample(
    out: Path,
    *,
    size: str = "320x240",
    frames: int = 50,
    fps: str = "25",
    audio: bool = False,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
    bframes: int | None = None,
    preset: str = "ultrafast",
    crf: int | None = None,
) -> Path:
    """Write the clip to `out` and return it; raises `RuntimeError` with ffmpeg's error.

    `gop`: a keyframe exactly every `gop` frames; by default one at least every
    `KEYFRAME_SECONDS` (x264's own default, 250 frames, would leave a short clip one keyframe,
    which `segments` cannot cut)."""
    args = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error"]
    width, height = size.split("x")
    # testsrc2 rounds odd sizes down to even (1 to 0): it draws at least 2x2, rounded up, and
    # the scale filter then gives exactly the size asked for.
    even = "x".join(str(max(2, int(n) + int(n) % 2)) for n in (width, height))
    source = f"testsrc2=size={even}:rate={fps},scale={width}:{height}"
    args += ["-y", "-f", "lavfi", "-i", source]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    args += ["-frames:v", str(frames), "-c:v", codec, "-pix_fmt", pix_fmt]
    if codec == "libx264":
        args += ["-preset", preset, *(["-crf", str(crf)] if crf is not None else [])]
    if gop is not None:  # a keyframe every `gop` frames (closed GOPs, so each decodes alone)
        args += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
    else:
        args += _keyframes_every(KEYFRAME_SECONDS, fps)
    if bframes is not None:  # reordered frames: decode order differs from display order
        args += ["-bf", str(bframes)]
    if audio:
        args += ["-c:a", "aac", "-shortest"]
    args.append(str(out))
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not make {out}: {done.stderr.strip()}")
    return out


def _keyframes_every(seconds: int, fps: str) -> list[str]:
    """ffmpeg's arguments for a keyframe at least every `seconds` at the rate `fps`: a number
    of frames where the rate is a number, else (a name such as `ntsc`) by time."""
    try:
        rate = Fraction(fps)
    except ValueError:
        return ["-force_key_frames", f"expr:gte(t,n_forced*{seconds})"]
    return ["-g", str(max(1, int(seconds * rate)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT (320x240)")
    parser.add_argument("--frames", type=int, default=50, help="number of frames (50)")
    parser.add_argument("--fps", default="25", help="frame rate, e.g. 25, 30000/1001 (25)")
    parser.add_argument("--audio", action="store_true", help="add a sine-tone audio track")
    parser.add_argument("--codec", default="libx264", help="video encoder (libx264)")
    parser.add_argument("--pix-fmt", default="yuv420p", help="pixel format (yuv420p)")
    parser.add_argument("--gop", type=int, help="keyframe interval in frames")
    parser.add_argument("--bframes", type=int, help="B-frames between references")
    args = parser.parse_args()
    try:
        make_sample(
            args.out,
            size=args.size,
            frames=args.frames,
            fps=args.fps,
            audio=args.audio,
            codec=args.codec,
            pix_fmt=args.pix_fmt,
            gop=args.gop,
            bframes=args.bframes,
        )
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
