#!/usr/bin/env python3
"""What measuring the GIL costs: the same run with the CPU clocks on and off, interleaved.

    python scripts/bench_cpu_clock.py [INPUT] [--layout L] [--repeat R] [--json]

Every stage span, digest and save reads three clocks at each end (`pipeline.instrument.cpuclock`);
`VIDPIPE_CPU_CLOCK=0` turns the readings off. This runs `vidpipe run INPUT --layout L` R times
each way, alternating off, on, off, on (so that a shared machine's drift hits both alike), and
prints the median wall time of each and the overhead: (on - off) / off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(source: Path, layout: str, clock: bool, out: Path) -> float:
    """Wall seconds of one run, as its report measured them."""
    env = {**os.environ, "VIDPIPE_CPU_CLOCK": "1" if clock else "0"}
    args = [sys.executable, "-m", "pipeline", "run", str(source), "--out", str(out)]
    args += ["--layout", layout, "--no-progress"]
    subprocess.run(args, check=True, capture_output=True, env=env, cwd=ROOT)
    wall: float = json.loads((out / "report.json").read_text())["wall_seconds"]
    return wall


def measure(source: Path, layout: str, repeat: int) -> dict[str, float]:
    walls: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="vidpipe-bench-clock-") as tmp:
        for round_ in range(repeat):
            for clock in (False, True):
                out = Path(tmp) / f"{clock}-{round_}"
                walls[clock].append(run_once(source, layout, clock, out))
    off, on = statistics.median(walls[False]), statistics.median(walls[True])
    return {"off_seconds": off, "on_seconds": on, "overhead": (on - off) / off}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "input", nargs="?", type=Path, default=ROOT / "sample_media/car-detection.mp4"
    )
    parser.add_argument("--layout", default="serial")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.input, args.layout, args.repeat)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.layout}, median of {args.repeat} interleaved: clocks off "
            f"{result['off_seconds']:.3f} s, on {result['on_seconds']:.3f} s, overhead "
            f"{result['overhead']:+.2%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
