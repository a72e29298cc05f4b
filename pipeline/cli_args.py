"""The `vidpipe` command line's arguments: the parser, and the run options they ask for.

Usage errors print one `error: ...` line and exit 2 (`_Parser`). The options shared by `run`
and `compare` are one table (`_JOB_OPTIONS`), so that `compare` can hand the same options to
every `vidpipe run` it starts (`job_arguments`).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from .config import RunOptions
from .settings import PRESETS, AnimationSettings, EncoderSettings, StageSpec, StartMethod, Transport

__all__ = ["Handlers", "build_parser", "job_arguments", "run_options"]

#: What runs each command: its name to a function of the parsed arguments, returning the exit
#: code.
Handlers = Mapping[str, Callable[[argparse.Namespace], int]]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n")


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


# The options of a job, shared by `run` and `compare` (which passes them on to every run).
_JOB_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    (
        "--tasks",
        {
            "type": _names,
            "default": ("compress", "render"),
            "help": "comma-separated tasks (default: compress,render)",
        },
    ),
    ("--height", {"type": int, "help": "compress: resize to this height (keeps aspect)"}),
    ("--crf", {"type": int, "default": 23, "help": "x264 constant rate factor, 0-51 (23)"}),
    (
        "--preset",
        {
            "choices": PRESETS,
            "metavar": "NAME",
            "help": "x264 preset (veryfast, or the workload's)",
        },
    ),
    (
        "--encoder-threads",
        {
            "type": int,
            "default": 0,
            "metavar": "N",
            "help": "x264 threads per encoder; 0 lets x264 choose (0)",
        },
    ),
    (
        "--workload",
        {
            "default": "default",
            "metavar": "NAME",
            "help": "preset: default, gil-bound, gil-free, io (see `vidpipe "
            "workloads`); options given explicitly override it",
        },
    ),
    (
        "--particles",
        {"type": int, "metavar": "N", "help": "render: particles, computed in pure Python (300)"},
    ),
    (
        "--samples",
        {
            "type": int,
            "metavar": "N",
            "help": "render: instants each particle's position is averaged over per frame "
            "(motion smoothing), computed in pure Python (1)",
        },
    ),
    (
        "--glow",
        {"type": int, "metavar": "N", "help": "render: glow blur passes, run in OpenCV (2)"},
    ),
    ("--seed", {"type": int, "default": 0, "help": "render: animation seed (0)"}),
    (
        "--save-every",
        {"type": int, "metavar": "N", "help": "thumbnail and checkpoint every N frames (25)"},
    ),
    (
        "--start-method",
        {
            "default": "spawn",
            "choices": [m.value for m in StartMethod],
            "help": "how worker processes start (spawn)",
        },
    ),
    (
        "--opencv-threads",
        {
            "type": int,
            "metavar": "N",
            "help": "OpenCV threads per process (default: OpenCV's choice)",
        },
    ),
    (
        "--workers",
        {
            "type": int,
            "metavar": "N",
            "help": "frame pool size and segment count (default: usable cores)",
        },
    ),
    (
        "--segment-frames",
        {
            "type": int,
            "default": 1500,
            "metavar": "N",
            "help": "encode each task in pieces of at least N frames, cut at keyframes, so "
            "that --resume can continue after the last finished one; 0: one piece (1500)",
        },
    ),
    (
        "--stage",
        {
            "action": "append",
            "metavar": "TASK:STAGE",
            "help": "add a stage to the end of TASK's chain; STAGE is a built-in stage's name "
            "(`vidpipe stages`), FILE.py:CLASS or MODULE:CLASS, then :key=value,... options "
            "(repeatable)",
        },
    ),
    (
        "--stall-timeout",
        {
            "type": float,
            "default": 60.0,
            "metavar": "SECONDS",
            "help": "fail the run when no frame moves for this long, naming a stopped process; "
            "0: never (60)",
        },
    ),
    (
        "--transport",
        {
            "default": "shm",
            "choices": [t.value for t in Transport],
            "help": "pool: how frames travel between processes (shm)",
        },
    ),
]


def _add_job_options(p: argparse.ArgumentParser) -> None:
    for flag, kwargs in _JOB_OPTIONS:
        p.add_argument(flag, **kwargs)


def job_arguments(args: argparse.Namespace) -> list[str]:
    """The job options given on this command line, as `vidpipe run` arguments."""
    out = []
    for flag, kwargs in _JOB_OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if isinstance(value, list):  # a repeatable option
            out += [arg for item in value for arg in (flag, item)]
        elif value is not None and value != kwargs.get("default"):
            out += [flag, ",".join(value) if isinstance(value, tuple) else str(value)]
    return out


def _add_run(sub: Any, handlers: Handlers) -> None:
    p = sub.add_parser("run", help="process a video with the compress and render tasks")
    p.add_argument("input", type=Path, help="input video file")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--layout",
        default="processes",
        help="where work runs: serial, threads, processes, hybrid, pool, segments, ray, or a "
        "layout file ending in .toml (see `vidpipe layouts`)",
    )
    _add_job_options(p)
    p.add_argument(
        "--trace",
        action="store_true",
        help="write DIR/trace.json, a timeline of every process and thread",
    )
    p.add_argument(
        "--ray-address",
        metavar="HOST:PORT",
        help="ray layout: join the Ray cluster at this address (default: a local instance)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run of the same job in DIR after its last finished "
        "piece; a finished job is left as it is",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite files at the paths the run writes (outputs, report, checkpoints, "
        "thumbnails) that vidpipe did not write; never any other file",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=handlers["run"])


def _add_compare(sub: Any, handlers: Handlers) -> None:
    p = sub.add_parser("compare", help="run layouts side by side; tables, plots, timelines")
    p.add_argument("input", type=Path, help="input video file")
    p.add_argument(
        "--layouts",
        type=_names,
        default=None,
        metavar="A,B,...",
        help="layouts to compare (default: every layout that needs no extra); serial always "
        "runs, as reference",
    )
    p.add_argument(
        "--repeat", type=int, default=3, metavar="R", help="runs per layout, interleaved (3)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("compare_out"),
        metavar="DIR",
        help="where results go (compare_out)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite results, charts and runs in DIR that vidpipe did not write",
    )
    _add_job_options(p)
    p.set_defaults(func=handlers["compare"])


def build_parser(handlers: Handlers) -> argparse.ArgumentParser:
    """The `vidpipe` parser; each command's `func` default is its entry in `handlers`."""
    parser = _Parser(
        prog="vidpipe",
        description="Multiprocessing vs multithreading, measured on a real video pipeline.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub, handlers)
    _add_compare(sub, handlers)
    p = sub.add_parser("probe", help="print the input's metadata as JSON")
    p.add_argument("input", type=Path)
    p.add_argument(
        "--fast",
        action="store_true",
        help="skip decoding (no frames_decoded; packets estimate the count)",
    )
    p.set_defaults(func=handlers["probe"])
    p = sub.add_parser("layouts", help="list the layouts and what runs where")
    p.set_defaults(func=handlers["layouts"])
    p = sub.add_parser("stages", help="list the built-in stages")
    p.set_defaults(func=handlers["stages"])
    p = sub.add_parser(
        "check-stage",
        help="check a stage against the protocol and say which layout suits it",
        description="Runs the stage on generated frames: picklable, deterministic, safe under "
        "threads and in any order (when it claims frame independence), and whether it "
        "releases the GIL. Exit 1 when it breaks a rule the layouts rely on.",
    )
    p.add_argument(
        "stage", metavar="STAGE", help="NAME, FILE.py:CLASS or MODULE:CLASS, then :key=value,..."
    )
    p.add_argument("--size", default="320x240", metavar="WxH", help="frame size (320x240)")
    p.add_argument("--frames", type=int, default=24, metavar="N", help="frames (24)")
    p.add_argument("--json", action="store_true", help="print the findings as one JSON object")
    p.set_defaults(func=handlers["check-stage"])
    p = sub.add_parser("workloads", help="list the workload presets")
    p.set_defaults(func=handlers["workloads"])
    return parser


def run_options(args: argparse.Namespace) -> RunOptions:
    """The RunOptions a parsed `run` or `compare` command line asks for, workload applied."""
    from .workloads import apply_workload

    explicit = {
        k
        for k in ("particles", "glow", "samples", "save_every", "preset")
        if getattr(args, k) is not None
    }
    animation = AnimationSettings(seed=args.seed)
    for key in ("particles", "glow", "samples"):
        if getattr(args, key) is not None:
            animation = dataclasses.replace(animation, **{key: getattr(args, key)})
    options = RunOptions(
        out_dir=args.out,
        layout=args.layout,
        tasks=args.tasks,
        height=args.height,
        encoder=EncoderSettings(
            crf=args.crf, preset=args.preset or "veryfast", threads=args.encoder_threads
        ),
        animation=animation,
        save_every=args.save_every if args.save_every is not None else 25,
        start_method=StartMethod(args.start_method),
        opencv_threads=args.opencv_threads,
        workers=args.workers,
        transport=Transport(args.transport),
        trace=args.trace,
        resume=getattr(args, "resume", False),
        force=getattr(args, "force", False),
        ray_address=getattr(args, "ray_address", None),
        segment_frames=args.segment_frames,
        stall_timeout=args.stall_timeout,
        stages=_stages(args.stage),
    )
    return apply_workload(options, args.workload, explicit)


def _stages(values: list[str] | None) -> tuple[tuple[str, StageSpec], ...]:
    if not values:
        return ()
    from .stages.loader import parse_task_stage  # imports the stages (and OpenCV)

    return tuple(parse_task_stage(value) for value in values)
