#!/usr/bin/env python3
"""Measure everything behind docs/case-study.md, docs/cluster.md's table and the README's
measured tables, and render those documents' generated parts from the committed data.

    python scripts/case_study.py measure [--repeat 3]   # then renders (make case-study)
    python scripts/case_study.py render [--check]       # from docs/data/case-study/ only

`measure` writes docs/data/case-study/:

- environment.json: when, on what machine, with which versions;
- key_differences/: `scripts/key_differences.py` (the note's table, its data and chart);
- transport.json: `scripts/bench_transport.py --json` (1080p frames between endpoints);
- compare/<name>/ (the workloads, the render task alone, ray against segments): each
  `vidpipe compare`'s results.json, results.md and charts, and
  runs.json, what each run's report says of its animate stage and its processes;
- runs.json: `vidpipe run` per layout with default settings, interleaved (the README's table).

A generated part of a document sits between `<!-- generated: NAME -->` and
`<!-- end generated -->`; `render` rewrites what is between them (docs_render.py holds the
renderers) and redraws the charts from the data beside them (the note's chart, each
comparison's speedups; the timelines are drawn by the measurement itself, from traces too large
to keep); `--check` changes nothing and fails when a committed document differs from
what its data render to (the test suite runs it). About 20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import docs_render  # noqa: E402
import key_differences  # noqa: E402

DATA = ROOT / "docs" / "data" / "case-study"
SAMPLE = "sample_media/car-detection.mp4"
LAYOUTS = ("serial", "threads", "processes", "hybrid", "pool", "segments")
EVERYWHERE = "examples/layouts/threads-everywhere.toml"
#: Each comparison behind the documents: its name and its options.
EVERY_LAYOUT = ",".join([*LAYOUTS, EVERYWHERE])
COMPARISONS: dict[str, list[str]] = {
    **{
        workload: ["--workload", workload, "--predict", "--layouts", EVERY_LAYOUT]
        for workload in ("gil-bound", "gil-free", "io", "default")
    },
    "render-python": [
        "--tasks", "render", "--particles", "12000", "--glow", "0", "--layouts", "hybrid,pool"
    ],
    "render-opencv": ["--tasks", "render", "--workload", "gil-free", "--layouts", "hybrid,pool"],
    "ray": ["--layouts", "segments,ray"],  # docs/cluster.md: each ray run starts its own Ray
}  # fmt: skip


def _python(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    print("$ python " + " ".join(args), file=sys.stderr, flush=True)
    return subprocess.run([sys.executable, *args], check=True, cwd=ROOT, text=True, **kwargs)


def environment() -> dict[str, Any]:
    """When and where the figures were measured."""
    from pipeline.config.options import RunOptions
    from pipeline.report.environment import collect_environment

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    env = collect_environment(RunOptions(out_dir=ROOT))  # only its thread settings are read
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "cpu": cpu,
        "memory_gib": round(memory),
        "commit": commit or None,
        **{k: env[k] for k in ("python", "gil_enabled", "cpu_count", "usable_cores")},
        **{k: env[k] for k in ("ffmpeg", "opencv", "numpy")},
    }


def compare(name: str, options: list[str], repeat: int, work: Path, data: Path) -> None:
    """One `vidpipe compare` into `work`; keep its results, charts and per-run extracts."""
    out = work / name
    _python("-m", "pipeline", "compare", SAMPLE, *options, "--repeat", str(repeat),
            "--out", str(out), stdout=subprocess.DEVNULL)  # fmt: skip
    keep = data / "compare" / name
    keep.mkdir(parents=True)
    for file in ("results.json", "results.md", "speedup.png", "timeline.png"):
        shutil.copy(out / file, keep / file)
    results = json.loads((keep / "results.json").read_text())
    runs = []
    for run in results["runs"]:
        report = json.loads((Path(run["out_dir"]) / "report.json").read_text())
        run["out_dir"] = Path(run["out_dir"]).relative_to(out).as_posix()  # not this machine's
        runs.append(_extract(run["layout"], run["round"], report))
    (keep / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (keep / "runs.json").write_text(json.dumps(runs, indent=1) + "\n")


def _extract(layout: str, round_: int, report: dict[str, Any]) -> dict[str, Any]:
    """What the documents need of one run's report: its animate stage and its processes."""
    render = report["tasks"].get("render", {})
    return {
        "layout": layout,
        "round": round_,
        "wall_seconds": report["wall_seconds"],
        "animate": render.get("cpu_breakdown", {}).get("animate"),
        "digests": {task: t["frame_digest"] for task, t in report["tasks"].items()},
        "peak_rss_bytes_total": report["peak_rss_bytes_total"],
        "processes": [
            {k: p[k] for k in ("role", "cpu_seconds", "peak_rss_bytes")}
            for p in report["processes"]
        ],
    }


def default_runs(repeat: int, work: Path, data: Path) -> None:
    """`vidpipe run` per layout with its default settings, interleaved, `repeat` rounds."""
    runs = []
    for round_ in range(1, repeat + 1):
        for layout in LAYOUTS:
            out = work / "runs" / f"{layout}-{round_}"
            _python("-m", "pipeline", "run", SAMPLE, "--out", str(out), "--layout", layout,
                    "--no-progress", stdout=subprocess.DEVNULL)  # fmt: skip
            runs.append(_extract(layout, round_, json.loads((out / "report.json").read_text())))
    (data / "runs.json").write_text(json.dumps(runs, indent=1) + "\n")


def measure(repeat: int) -> None:
    """Measure everything into a new folder, and put it in DATA's place only once complete:
    a failed or interrupted measurement leaves the committed data as they were."""
    with tempfile.TemporaryDirectory(prefix="vidpipe-case-study-") as tmp:
        work, data = Path(tmp), Path(tmp) / "data"
        _python("scripts/key_differences.py", "--out", str(data / "key_differences"),
                stdout=subprocess.DEVNULL)  # fmt: skip
        done = _python("scripts/bench_transport.py", "--json", "--repeat", "5",
                       stdout=subprocess.PIPE)  # fmt: skip
        (data / "transport.json").write_text(json.dumps(json.loads(done.stdout), indent=1) + "\n")
        default_runs(repeat, work, data)
        for name, options in COMPARISONS.items():
            compare(name, options, repeat, work, data)
        (data / "environment.json").write_text(json.dumps(environment(), indent=1) + "\n")
        old = DATA.with_name(f".{DATA.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if DATA.exists():
            DATA.rename(old)
        shutil.copytree(data, DATA)
        shutil.rmtree(old, ignore_errors=True)


def redraw_charts() -> None:
    """The note's chart and each comparison's speedup chart, drawn again from their data."""
    from pipeline.lab.plots import speedup_chart
    from pipeline.lab.summary import LayoutSummary

    keydiff = DATA / "key_differences"
    key_differences.write_chart(
        json.loads((keydiff / "key_differences.json").read_text()), keydiff / "key_differences.png"
    )
    for folder in sorted((DATA / "compare").iterdir()):
        results = json.loads((folder / "results.json").read_text())
        summaries = [LayoutSummary(**s) for s in results["summaries"]]
        speedup_chart(summaries, results["environment"]["usable_cores"], folder / "speedup.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("measure", help="measure everything, then render")
    run.add_argument("--repeat", type=int, default=3, help="rounds of each comparison (3)")
    check = sub.add_parser("render", help="render the documents from the committed data")
    check.add_argument("--check", action="store_true", help="change nothing; exit 1 on a diff")
    args = parser.parse_args()
    if args.command == "measure":
        try:
            measure(args.repeat)
        except subprocess.CalledProcessError as error:  # its own error line is printed above
            command = " ".join(map(str, error.cmd[1:]))
            print(f"error: `python {command}` failed (exit {error.returncode}); "
                  "docs/data/case-study is unchanged", file=sys.stderr)  # fmt: skip
            return 1
    try:
        stale = docs_render.render_all(DATA, ROOT, write=not getattr(args, "check", False))
    except docs_render.RenderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if stale and getattr(args, "check", False):
        for path in stale:
            print(
                f"error: {path.relative_to(ROOT)} differs from what docs/data/case-study renders "
                "to: run `python scripts/case_study.py render`",
                file=sys.stderr,
            )
        return 1
    if args.command == "render" and not args.check:
        redraw_charts()
    for path in stale:
        print(f"rendered {path.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
