#!/usr/bin/env python3
"""Peak memory of each layout next to ffmpeg's own command lines doing the same two jobs.

    python scripts/bench_memory.py [INPUT] [--repeat 3] [--layouts serial,threads,...] [--json]

Without INPUT it makes a 1080p clip with ffmpeg's test sources: 5 seconds (150 frames) of
`testsrc2` at 30 fps with a sine tone, H.264 `medium` CRF 23 and AAC. A run's memory does not
grow with the video's length (`tests/test_memory.py`), so a short clip gives the peak.

Measured alike on both sides: each process's own peak resident memory, `VmHWM` from
`/proc/PID/status` (not `ru_maxrss`, which the kernel carries from a parent into its children):

- ffmpeg's command lines: `compress` re-encodes INPUT (libx264 at vidpipe's settings, the audio
  to AAC), `render` does the same codec work (ffmpeg cannot draw our animation, but decoding
  and encoding are what weigh); each is sampled every 20 ms until it exits. Their sum is the
  pair run side by side, their maximum the pair run one after the other;
- `vidpipe run INPUT --layout L`: the report's `peak_rss_bytes_total`, the summed peaks of the
  processes alive together (ffmpeg children sampled every 0.1 s).

Each layout is compared with the pair run as it runs its tasks: one after the other (`serial`)
against the maximum, side by side (every other layout) against the sum. Runs alternate (A B C
... A B C ...); medians of `--repeat`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from make_sample import make_sample  # noqa: E402  (beside this script)

from pipeline.instrument.procstats import peak_rss_now  # noqa: E402
from pipeline.layouts import LAYOUTS  # noqa: E402
from pipeline.media.ffmpeg import ffmpeg_exe  # noqa: E402

#: Layouts that run their tasks one after the other; the others run them side by side.
SEQUENTIAL = {"serial"}
#: How often an ffmpeg command line's VmHWM is read while it runs.
SAMPLE_SECONDS = 0.02


def _make_clip(out: Path) -> Path:
    """5 s of 1080p testsrc2 at 30 fps with a sine tone, x264 `medium` CRF 23."""
    size, frames, fps = "1920x1080", 150, "30"
    return make_sample(out, size=size, frames=frames, fps=fps, audio=True, preset="medium", crf=23)


def _ffmpeg_peak(source: Path, out: Path) -> int:
    """VmHWM of one ffmpeg command line re-encoding `source` as vidpipe's tasks encode."""
    command = [
        *(ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"),
        *("-i", str(source), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23"),
        *("-pix_fmt", "yuv420p", "-c:a", "aac", str(out)),
    ]
    peak = 0
    with subprocess.Popen(command) as proc:
        while proc.poll() is None:
            peak = max(peak, peak_rss_now(proc.pid))
            time.sleep(SAMPLE_SECONDS)
    if proc.returncode != 0:
        raise SystemExit(f"error: ffmpeg failed on {source} (exit {proc.returncode})")
    return peak


def _layout_peak(source: Path, layout: str, out: Path) -> int:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pipeline", "run", str(source), "--out", str(out)),
            *("--layout", layout, "--no-progress"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"error: layout {layout} failed: {done.stderr.strip()}")
    return int(json.loads((out / "report.json").read_text())["peak_rss_bytes_total"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, nargs="?", help="a video (default: a 1080p clip)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (3)")
    default = ",".join(name for name, info in LAYOUTS.items() if not info.extra)
    parser.add_argument("--layouts", default=default, help=f"layouts ({default})")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    layouts = args.layouts.split(",")
    unknown = [name for name in layouts if name not in LAYOUTS]
    if args.repeat < 1 or unknown:
        parser.error(f"unknown layout {unknown[0]}" if unknown else "--repeat must be 1 or more")
    work = Path(tempfile.mkdtemp(prefix="vidpipe-memory-"))
    peaks: dict[str, list[int]] = {name: [] for name in ["compress", "render", *layouts]}
    try:
        source = args.input.resolve() if args.input else _make_clip(work / "1080p.mp4")
        for _ in range(args.repeat):
            for task in ("compress", "render"):
                peaks[task].append(_ffmpeg_peak(source, work / f"{task}.mp4"))
            for layout in layouts:
                out = work / layout
                peaks[layout].append(_layout_peak(source, layout, out))
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mb = {name: statistics.median(values) / 1e6 for name, values in peaks.items()}
    pair = {"one after the other": max(mb["compress"], mb["render"])}
    pair["side by side"] = mb["compress"] + mb["render"]
    rows = []
    for layout in layouts:
        against = "one after the other" if layout in SEQUENTIAL else "side by side"
        rows.append((layout, mb[layout], against, mb[layout] / pair[against]))
    if args.json:
        print(
            json.dumps(
                {
                    "repeat": args.repeat,
                    "ffmpeg_mb": {"compress": mb["compress"], "render": mb["render"], **pair},
                    "layouts": {
                        name: {"peak_mb": peak, "against": against, "ratio": round(ratio, 3)}
                        for name, peak, against, ratio in rows
                    },
                },
                indent=2,
            )
        )
        return 0
    print(f"medians of {args.repeat} interleaved runs; peak MB (VmHWM, summed over processes)")
    print(f"ffmpeg command line: compress {mb['compress']:.0f}, render {mb['render']:.0f}")
    print(f"{'layout':<10} {'peak MB':>8}  {'ffmpeg pair':<28} {'x ffmpeg':>8}")
    for name, peak, against, ratio in rows:
        print(f"{name:<10} {peak:8.0f}  {against + f' ({pair[against]:.0f})':<28} {ratio:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
