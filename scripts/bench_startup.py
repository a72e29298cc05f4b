#!/usr/bin/env python3
"""How long vidpipe takes to start: the listing commands, and a run until its first ffmpeg.

    python scripts/bench_startup.py [--repeat 21] [--json]

Every command is a fresh process, timed from just before it is started:

- `python -c pass`: a bare interpreter of the same virtual environment, the floor;
- `vidpipe layouts`, `stages`, `workloads`, `--help` (as `python -m pipeline ...`), to exit;
- `vidpipe run SAMPLE` until its first ffmpeg starts: ffmpeg is replaced for that run (through
  `IMAGEIO_FFMPEG_EXE`, which imageio-ffmpeg honours) by a script that notes the time and then
  runs the real one. The run's first ffmpeg probes the input.

The commands alternate (A B C ... A B C ...) and the medians are reported, with each one's
time beyond the bare interpreter's. `python -X importtime -m pipeline layouts` says where the
rest goes, module by module.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_media" / "car-detection.mp4"

#: Notes when it was started (nanoseconds since the epoch), then becomes the real ffmpeg.
WRAPPER = """#!/bin/sh
date +%s%N >> "{log}"
exec "{ffmpeg}" "$@"
"""


def _timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - started


def _first_ffmpeg(work: Path, wrapper: Path, log: Path) -> float:
    """Seconds from starting `vidpipe run` to its first ffmpeg; the run is stopped there."""
    log.write_text("")
    env = {**os.environ, "IMAGEIO_FFMPEG_EXE": str(wrapper)}
    out = Path(tempfile.mkdtemp(dir=work))
    command = [sys.executable, "-m", "pipeline", "run", str(SAMPLE), "--out", str(out)]
    started_ns = time.time_ns()
    proc = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while not log.read_text().strip():
            if proc.poll() is not None:
                raise SystemExit("error: the run ended before it started ffmpeg")
            time.sleep(0.002)
    finally:
        proc.terminate()  # a run cleans up after SIGTERM: nothing is left in `out`
        proc.wait()
    first_ns = int(log.read_text().split()[0])
    return (first_ns - started_ns) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=21, help="runs of each (21)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    from pipeline.media.ffmpeg import ffmpeg_exe

    python = [sys.executable]
    commands = {
        "bare interpreter": [*python, "-c", "pass"],
        **{
            f"vidpipe {words}": [*python, "-m", "pipeline", *words.split()]
            for words in ("layouts", "stages", "workloads", "--help")
        },
    }
    times: dict[str, list[float]] = {name: [] for name in [*commands, "run: first ffmpeg"]}
    with tempfile.TemporaryDirectory(prefix="vidpipe-startup-") as folder:
        work = Path(folder)
        log = work / "started"
        wrapper = work / "ffmpeg"
        wrapper.write_text(WRAPPER.format(log=log, ffmpeg=ffmpeg_exe()))
        wrapper.chmod(0o755)
        for _ in range(args.repeat):
            for name, command in commands.items():
                times[name].append(_timed(command))
            times["run: first ffmpeg"].append(_first_ffmpeg(work, wrapper, log))
    medians = {name: statistics.median(t) for name, t in times.items()}
    bare = medians["bare interpreter"]
    if args.json:
        result = {"repeat": args.repeat, "seconds": medians, "beyond_bare": {}}
        result["beyond_bare"] = {name: round(v - bare, 4) for name, v in medians.items()}
        print(json.dumps(result, indent=2))
        return 0
    print(f"medians of {args.repeat} interleaved runs")
    print(f"{'command':<26} {'seconds':>8} {'beyond bare':>12}")
    for name, value in medians.items():
        print(f"{name:<26} {value:8.3f} {value - bare:12.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
