#!/usr/bin/env python3
"""How fast is our compress task next to ffmpeg itself, and next to the Python peers?

    python scripts/bench_vs_ffmpeg.py INPUT [--repeat R] [--crf 23] [--preset veryfast] [--json]
    python scripts/bench_vs_ffmpeg.py --synthetic 720p [...]

`--synthetic 720p` (or `1080p`) makes the input with ffmpeg's own test source: 20 seconds of
`testsrc2` at 30 fps, H.264 `medium` CRF 23, yuv420p, no audio (600 frames ffmpeg re-encodes
at about 200 frames/s on the development machine, where our fixed costs show most).

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
(A B C D E A B C D E ...) so that a shared machine's drift hits all alike. Each engine also
runs, in the same rounds, on the input's first `SHORT_FRAMES` frames: that time is its
start-up (and finish), and the difference between the two runs gives its steady-state
frames/s, the rate at which it works once started. It prints frames/s per run, the medians and
their ratio to ffmpeg's, then start-up and steady state; with `--json`, one JSON object whose
keys `ffmpeg_fps`, `identity_fps`, `bgr_fps`, `moviepy_fps`, `opencv_fps`, `imageio_bgr_fps`
and `imageio_i420_fps` are the medians (null for an engine that is not installed), and
`startup_seconds` and `steady_fps` give the rest by engine.
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


#: Frames of the short run whose time counts as an engine's start-up.
SHORT_FRAMES = 10
#: `--synthetic` inputs: the frame size of `testsrc2`, 20 s at 30 fps.
SYNTHETIC = {"720p": "1280x720", "1080p": "1920x1080"}


def _ffmpeg(*args: str) -> None:
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    subprocess.run(command, check=True)


def _synthetic(size: str, out: Path) -> Path:
    """The issue's benchmark clip: 20 s of testsrc2 at 30 fps, x264 medium CRF 23."""
    _ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30", "-t", "20"),
        *("-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p", str(out)),
    )
    return out


def _short(source: Path, out: Path) -> Path:
    """The first `SHORT_FRAMES` frames of `source` (its audio too, if any), for start-up."""
    _ffmpeg(
        *("-i", str(source), "-map", "0:v:0", "-map", "0:a:0?", "-frames:v", str(SHORT_FRAMES)),
        *("-c:v", "libx264", "-preset", "medium", "-crf", "18", "-c:a", "copy", "-shortest"),
        str(out),
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, nargs="?")
    parser.add_argument("--synthetic", choices=SYNTHETIC, help="make the input: testsrc2, 20 s")
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine (3)")
    parser.add_argument("--crf", type=int, default=23, help="x264 CRF (23)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset (veryfast)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if (args.input is None) == (args.synthetic is None):
        parser.error("give either an INPUT or --synthetic SIZE (one, not both)")
    work = Path(tempfile.mkdtemp(prefix="vidpipe-bench-"))
    try:
        source = args.input.resolve() if args.input else None
        if source is None:
            source = _synthetic(SYNTHETIC[args.synthetic], work / f"{args.synthetic}.mp4")
        short = _short(source, work / "short.mp4")
        frames, short_frames = count_decoded_frames(source), count_decoded_frames(short)
        runs = {
            "full": _engines(source, args.crf, args.preset, work),
            "short": _engines(short, args.crf, args.preset, work),
        }
        names = [name for name, cmd in runs["full"].items() if cmd]
        times: dict[str, dict[str, list[float]]] = {k: {n: [] for n in names} for k in runs}
        for round_ in range(1, args.repeat + 1):
            for name in names:
                for kind, engines in runs.items():
                    command = engines[name]
                    assert command is not None
                    out = Path(tempfile.mkdtemp(dir=work))  # a fresh folder for each run
                    seconds = _run(command(out))
                    shutil.rmtree(out, ignore_errors=True)
                    times[kind][name].append(seconds)
                    if not args.json and kind == "full":
                        fps_now = frames / seconds
                        print(f"round {round_} {name:<12} {seconds:7.2f} s  {fps_now:7.1f} fps")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    full = {name: statistics.median(t) for name, t in times["full"].items()}
    startup = {name: statistics.median(t) for name, t in times["short"].items()}
    fps = {name: frames / full[name] for name in names}
    steady = {
        name: (frames - short_frames) / max(full[name] - startup[name], 1e-9) for name in names
    }
    result = {f"{name}_fps": round(fps[name], 1) if name in fps else None for name in runs["full"]}
    result |= {
        "input": str(args.input) if args.input else f"synthetic {args.synthetic}",
        "frames": frames,
        "repeat": args.repeat,
        "ratios_to_ffmpeg": {name: round(v / fps["ffmpeg"], 3) for name, v in fps.items()},
        "startup_seconds": {name: round(v, 3) for name, v in startup.items()},
        "steady_fps": {name: round(v, 1) for name, v in steady.items()},
        "environment": collect_environment(RunOptions(out_dir=Path("."))),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"\n{frames} frames, medians of {args.repeat} interleaved runs")
    print(
        f"{'engine':<12} {'frames/s':>9} {'x ffmpeg':>9} {'start-up s':>11} "
        f"{'steady fps':>11} {'x ffmpeg':>9}"
    )
    for name in names:
        print(
            f"{name:<12} {fps[name]:9.1f} {fps[name] / fps['ffmpeg']:9.2f} "
            f"{startup[name]:11.3f} {steady[name]:11.1f} {steady[name] / steady['ffmpeg']:9.2f}"
        )
    print(f"(start-up: the whole run on the first {short_frames} frames)")
    for name, command in runs["full"].items():
        if command is None:
            print(f"{name:<12} not installed (pip install -e '.[dev]')")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
