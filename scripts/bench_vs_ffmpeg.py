#!/usr/bin/env python3
"""How fast is our compress task next to ffmpeg itself, and next to the Python peers?

    python scripts/bench_vs_ffmpeg.py INPUT [--repeat R] [--crf 23] [--preset veryfast] [--json]

Runs the same job, INPUT re-encoded with libx264 at the same CRF and preset (the audio kept as
our compress task keeps it), with each of:

- `ffmpeg`: ffmpeg's own command line, the reference;
- `identity`: `vidpipe run INPUT --tasks compress --layout serial`, no stage: frames stay in the
  decoder's I420 and go straight to the encoder;
- `bgr`: the same with one stage that only accepts BGR and returns the frame unchanged, so every
  frame is converted to BGR and back;
- `moviepy`: MoviePy's `VideoFileClip(INPUT).write_videofile(...)` (if installed: the `dev`
  extra), video and audio;
- `opencv`: a `cv2.VideoCapture` / `cv2.VideoWriter` loop, the obvious OpenCV program, with the
  codec OpenCV's own FFmpeg offers (its wheels carry no H.264 encoder: MPEG-4 Part 2, `mp4v`),
  video only. A reference for the cost of a Python loop, not the same job;
- `imageio_bgr`, `imageio_i420`: the obvious imageio-ffmpeg loop (`read_frames` into
  `write_frames`, same codec settings, video only) with BGR frames and with the decoder's own
  YUV 4:2:0: what moving every frame through Python costs with nothing else done to it.

Every command runs as a fresh process, timed from start to exit; the engines alternate
(A B C D E A B C D E ...) so that a shared machine's drift hits all alike. It prints frames/s
per run, the medians and their ratio to ffmpeg's; with `--json`, one JSON object whose keys
`ffmpeg_fps`, `identity_fps`, `bgr_fps`, `moviepy_fps`, `opencv_fps`, `imageio_bgr_fps` and
`imageio_i420_fps` are the medians (null for an engine that is not installed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config.options import RunOptions  # noqa: E402
from pipeline.media.ffmpeg import ffmpeg_exe  # noqa: E402
from pipeline.media.probe import count_decoded_frames, probe  # noqa: E402
from pipeline.report.environment import collect_environment  # noqa: E402

#: A stage that needs BGR frames and does nothing else: what the BGR path costs by itself.
PASSTHROUGH = '''
from pipeline.stages import Stage


class Passthrough(Stage):
    """Returns each BGR frame as it came."""

    name = "passthrough"

    def process(self, frame, index):
        return frame
'''

MOVIEPY = """
import sys
from moviepy import VideoFileClip
source, out, preset, crf, audio = sys.argv[1:6]
with VideoFileClip(source, audio=audio == "1") as clip:
    clip.write_videofile(
        out, codec="libx264", preset=preset, ffmpeg_params=["-crf", crf],
        audio=audio == "1", logger=None,
    )
"""

OPENCV = """
import sys
import cv2
source, out = sys.argv[1:3]
capture = cv2.VideoCapture(source)
fps = capture.get(cv2.CAP_PROP_FPS)
size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
if not writer.isOpened():
    sys.exit("OpenCV cannot write mp4v here")
while True:
    ok, frame = capture.read()
    if not ok:
        break
    writer.write(frame)
writer.release()
capture.release()
"""

#: The obvious imageio-ffmpeg program: read every frame as bytes, write it on (video only).
IMAGEIO = """
import sys
import imageio_ffmpeg
source, out, pix_fmt, preset, crf = sys.argv[1:6]
bits = {"bgr24": 24, "yuv420p": 12}[pix_fmt]
frames = imageio_ffmpeg.read_frames(source, pix_fmt=pix_fmt, bits_per_pixel=bits)
meta = next(frames)
writer = imageio_ffmpeg.write_frames(
    out, meta["size"], pix_fmt_in=pix_fmt, fps=meta["fps"], quality=None, codec="libx264",
    macro_block_size=1, output_params=["-preset", preset, "-crf", crf],
)
writer.send(None)
for frame in frames:
    writer.send(frame)
writer.close()
"""

Command = Callable[[Path], list[str]]


def _engines(source: Path, crf: int, preset: str, work: Path) -> dict[str, Command | None]:
    """Each engine's command line, writing into the folder it is given."""
    info = probe(source)
    stage_file = work / "passthrough.py"
    stage_file.write_text(PASSTHROUGH)
    audio = ["-map", "0:a:0", "-c:a", "copy"] if info.audio_codec else []
    vidpipe = [sys.executable, "-m", "pipeline", "run", str(source), "--layout", "serial"]
    vidpipe += ["--tasks", "compress", "--crf", str(crf), "--preset", preset, "--no-progress"]
    has_moviepy = importlib.util.find_spec("moviepy") is not None
    return {
        "ffmpeg": lambda out: [
            ffmpeg_exe(),
            *("-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(source)),
            *("-map", "0:v:0", *audio, "-c:v", "libx264", "-preset", preset, "-crf", str(crf)),
            *("-pix_fmt", "yuv420p", "-movflags", "+faststart", str(out / "ffmpeg.mp4")),
        ],
        "identity": lambda out: [*vidpipe, "--out", str(out)],
        "bgr": lambda out: [
            *vidpipe,
            *("--out", str(out), "--stage", f"compress:{stage_file}:Passthrough"),
        ],
        "moviepy": (
            (
                lambda out: [
                    *(sys.executable, "-c", MOVIEPY, str(source), str(out / "moviepy.mp4")),
                    *(preset, str(crf), "1" if info.audio_codec else "0"),
                ]
            )
            if has_moviepy
            else None
        ),
        "opencv": lambda out: [sys.executable, "-c", OPENCV, str(source), str(out / "cv.mp4")],
        "imageio_bgr": lambda out: [
            *(sys.executable, "-c", IMAGEIO, str(source), str(out / "io.mp4")),
            *("bgr24", preset, str(crf)),
        ],
        "imageio_i420": lambda out: [
            *(sys.executable, "-c", IMAGEIO, str(source), str(out / "io.mp4")),
            *("yuv420p", preset, str(crf)),
        ],
    }


def _run(command: list[str]) -> float:
    """Seconds the command took, from start to exit."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command[:3])} ... failed: {done.stderr.strip()[-500:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine (3)")
    parser.add_argument("--crf", type=int, default=23, help="x264 CRF (23)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset (veryfast)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    frames = count_decoded_frames(args.input)
    work = Path(tempfile.mkdtemp(prefix="vidpipe-bench-"))
    try:
        engines = _engines(args.input.resolve(), args.crf, args.preset, work)
        times: dict[str, list[float]] = {name: [] for name, cmd in engines.items() if cmd}
        for round_ in range(1, args.repeat + 1):
            for name, command in engines.items():
                if command is None:
                    continue
                out = Path(tempfile.mkdtemp(dir=work))  # a fresh folder for each run
                seconds = _run(command(out))
                shutil.rmtree(out, ignore_errors=True)
                times[name].append(seconds)
                if not args.json:
                    fps_now = frames / seconds
                    print(f"round {round_} {name:<12} {seconds:7.2f} s  {fps_now:7.1f} fps")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fps = {name: frames / statistics.median(t) for name, t in times.items()}
    result = {f"{name}_fps": round(fps[name], 1) if name in fps else None for name in engines}
    result |= {
        "frames": frames,
        "repeat": args.repeat,
        "ratios_to_ffmpeg": {name: round(v / fps["ffmpeg"], 3) for name, v in fps.items()},
        "environment": collect_environment(RunOptions(out_dir=Path("."))),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"\n{frames} frames, medians of {args.repeat} interleaved runs")
    print(f"{'engine':<12} {'frames/s':>9} {'x ffmpeg':>9}")
    for name, value in fps.items():
        print(f"{name:<12} {value:9.1f} {value / fps['ffmpeg']:9.2f}")
    for name, command in engines.items():
        if command is None:
            print(f"{name:<12} not installed (pip install -e '.[dev]')")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
