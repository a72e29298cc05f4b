"""The `vidpipe` command line: `run`, `compare`, `probe`, `layouts`, `stages`, `check-stage`,
`workloads`.

Exit codes: 0 success; 2 bad input or usage (one `error: ...` line, no traceback); 1 processing
failed; 130 Ctrl-C; 143 SIGTERM. `--debug` adds the traceback for failures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from .config import (
    PRESETS,
    AnimationSettings,
    EncoderSettings,
    RunOptions,
    StageSpec,
    StartMethod,
    Transport,
)
from .errors import ConfigError, Interrupted, PipelineError

if TYPE_CHECKING:
    from .job import RunPlan

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n")


def _tasks(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


# The options of a job, shared by `run` and `compare` (which passes them on to every run).
_JOB_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    (
        "--tasks",
        {
            "type": _tasks,
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


def _job_arguments(args: argparse.Namespace) -> list[str]:
    """The job options given on this command line, as `vidpipe run` arguments."""
    out = []
    for flag, kwargs in _JOB_OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if isinstance(value, list):  # a repeatable option
            out += [arg for item in value for arg in (flag, item)]
        elif value is not None and value != kwargs.get("default"):
            out += [flag, ",".join(value) if isinstance(value, tuple) else str(value)]
    return out


def _add_run(sub: Any) -> None:
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
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_run)


def _add_compare(sub: Any) -> None:
    p = sub.add_parser("compare", help="run layouts side by side; tables, plots, timelines")
    p.add_argument("input", type=Path, help="input video file")
    p.add_argument(
        "--layouts",
        type=_tasks,
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
    _add_job_options(p)
    p.set_defaults(func=_cmd_compare)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vidpipe",
        description="Multiprocessing vs multithreading, measured on a real video pipeline.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    _add_compare(sub)
    p = sub.add_parser("probe", help="print the input's metadata as JSON")
    p.add_argument("input", type=Path)
    p.add_argument(
        "--fast",
        action="store_true",
        help="skip decoding (no frames_decoded; packets estimate the count)",
    )
    p.set_defaults(func=_cmd_probe)
    p = sub.add_parser("layouts", help="list the layouts and what runs where")
    p.set_defaults(func=_cmd_layouts)
    p = sub.add_parser("stages", help="list the built-in stages")
    p.set_defaults(func=_cmd_stages)
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
    p.set_defaults(func=_cmd_check_stage)
    p = sub.add_parser("workloads", help="list the workload presets")
    p.set_defaults(func=_cmd_workloads)
    return parser


def _options(args: argparse.Namespace) -> RunOptions:
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
        ray_address=getattr(args, "ray_address", None),
        segment_frames=args.segment_frames,
        stages=_stages(args.stage),
    )
    return apply_workload(options, args.workload, explicit)


def _stages(values: list[str] | None) -> tuple[tuple[str, StageSpec], ...]:
    if not values:
        return ()
    from .stages.loader import parse_task_stage  # imports the stages (and OpenCV)

    return tuple(parse_task_stage(value) for value in values)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def _resume_notes(plan: RunPlan) -> list[str]:
    """What `--resume` found for each task, one line each."""
    from .segments import piece_frames

    notes = [f"{name}: finished by an earlier run, kept" for name in plan.finished]
    for task in plan.tasks:
        pieces = plan.pieces[task.name]
        if pieces.done:
            frames = sum(piece_frames(s) for s in pieces.segments if s.number in pieces.done)
            notes.append(
                f"{task.name}: resuming after {len(pieces.done)} of {len(pieces.segments)} "
                f"pieces ({frames} frames)"
            )
        else:
            notes.append(f"{task.name}: nothing to resume, starting from the beginning")
    return notes


def _cmd_run(args: argparse.Namespace) -> int:
    from .job import execute, plan
    from .reporters import NullReporter, Reporter

    options = _options(args)
    job = plan(args.input, options)
    if options.resume:
        if not job.tasks:
            print(
                f"nothing to do: {options.out_dir} already holds this finished job "
                f"({', '.join(r.output for r in job.finished.values())})"
            )
            return 0
        for note in _resume_notes(job):
            print(f"resume: {note}")
    reporter: Reporter = NullReporter()
    bars = None
    if not args.no_progress and sys.stderr.isatty():
        from .cli_progress import TqdmReporter

        reporter = bars = TqdmReporter(list(options.tasks))
    try:
        report = execute(job, reporter)
    finally:
        if bars is not None:
            bars.close()
    print(
        f"layout {report.layout}: {report.wall_seconds:.2f} s wall, "
        f"peak memory {_megabytes(report.peak_rss_bytes_total)} over the processes alive "
        f"together ({len(report.processes)} processes in all)"
    )
    print(f"{'task':<10} {'frames':>6} {'seconds':>8} {'fps':>7}  {'output':<16} size")
    for name, t in report.tasks.items():
        fps = t.frames / t.seconds if t.seconds else 0.0
        print(
            f"{name:<10} {t.frames:>6} {t.seconds:>8.2f} {fps:>7.1f}  {t.output:<16} "
            f"{_megabytes(t.input_bytes)} -> {_megabytes(t.output_bytes)} "
            f"(ratio {t.compression_ratio:.2f})"
        )
        if t.size_fix:
            print(f"{'':<10} note: {t.size_fix}")
        listed = report.input["video"]["packets"]
        if t.frames < listed:
            print(
                f"{'':<10} note: the input lists {listed} frames; {listed - t.frames} could "
                "not be decoded (damaged input) and were skipped"
            )
    for node, work in report.nodes.items():
        print(
            f"node {node}: {work['segments']} segments, {work['frames']} frames, "
            f"{work['busy_seconds']:.2f} s busy, {_megabytes(work['bytes_in'])} in, "
            f"{_megabytes(work['bytes_out'])} out"
        )
    for name, t in report.tasks.items():
        phase, share = t.bottleneck()
        if phase:
            print(f"{name}: most time went to {phase} ({share:.0%} of {t.seconds:.2f} s)")
    if options.trace:
        print(f"trace: {options.out_dir / 'trace.json'} (open in https://ui.perfetto.dev)")
    print(f"report: {options.out_dir / 'report.json'}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare
    from .environment import usable_cores
    from .layouts import LAYOUTS, load_layout
    from .media.probe import probe as probe_input
    from .plots import speedup_chart, timeline_chart
    from .workloads import WORKLOADS

    # Layouts that need an extra (a cluster engine) are compared only when asked for.
    layouts = list(args.layouts or (name for name, info in LAYOUTS.items() if not info.extra))
    for layout in layouts:
        load_layout(layout)  # unknown or uninstalled layouts fail before any run
    if args.repeat < 1:
        raise ConfigError(f"--repeat must be at least 1, got {args.repeat}")
    if args.workload not in WORKLOADS:
        raise ConfigError(f"unknown workload '{args.workload}' (available: {', '.join(WORKLOADS)})")
    # Bad option values fail here, in one line, not after the first of many runs.
    _options(argparse.Namespace(**{**vars(args), "layout": "serial", "trace": False}))
    probe_input(args.input)
    args.out.mkdir(parents=True, exist_ok=True)
    summaries, runs = compare(
        args.input,
        layouts,
        repeat=args.repeat,
        out_dir=args.out,
        options=_job_arguments(args),
        progress=lambda line: print(line, file=sys.stderr),
    )
    speedup_chart(summaries, usable_cores(), args.out / "speedup.png")
    traces = {r.layout: Path(r.out_dir) / "trace.json" for r in runs if r.traced}
    timeline_chart(traces, args.out / "timeline.png")
    print((args.out / "results.md").read_text())
    print(
        f"results: {args.out / 'results.json'}, {args.out / 'speedup.png'}, "
        f"{args.out / 'timeline.png'}"
    )
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from .media.probe import count_decoded_frames, probe

    info = probe(args.input)
    data = info.to_dict()
    if not args.fast:
        data["frames_decoded"] = count_decoded_frames(args.input)
    print(json.dumps(data, indent=2))
    return 0


def _cmd_layouts(args: argparse.Namespace) -> int:
    from .layouts import CUSTOM, LAYOUTS

    width = max(len(name) for name in [*LAYOUTS, "FILE.toml"])
    for info in LAYOUTS.values():
        needs = f" (needs the '{info.extra}' extra)" if info.extra else ""
        print(f"{info.name:<{width}}  {info.summary}{needs}")
    print(f"{'FILE.toml':<{width}}  {CUSTOM.summary} (see examples/layouts/)")
    return 0


def _cmd_stages(args: argparse.Namespace) -> int:
    from .stages import BUILTIN_STAGES

    width = max(len(name) for name in BUILTIN_STAGES)
    for name, cls in BUILTIN_STAGES.items():
        order = "frame-independent" if cls.frame_independent else "in order"
        formats = ", ".join(sorted(f.value for f in cls.accepts))
        print(f"{name:<{width}}  {cls.summary()} [{order}; takes {formats}]")
    return 0


def _yes(value: bool | None, unknown: str = "not checked") -> str:
    return unknown if value is None else "yes" if value else "NO"


def _cmd_check_stage(args: argparse.Namespace) -> int:
    from .stagecheck import check_stage
    from .stages.loader import parse_stage_spec

    width, _, height = args.size.partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) >= 2 and int(height) >= 2):
        raise ConfigError(f"--size must be WIDTHxHEIGHT, at least 2x2, got '{args.size}'")
    if args.frames < 2:
        raise ConfigError(f"--frames must be 2 or more, got {args.frames}")
    spec = parse_stage_spec(args.stage, f"check-stage '{args.stage}'")
    report = check_stage(spec, width=int(width), height=int(height), count=args.frames)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.ok else 1
    independent = "declared yes" if report.frame_independent else "declared no: runs in order"
    speed = (
        "not measured (one usable core)"
        if report.speedup_2_threads is None
        else f"{_yes(report.releases_gil, 'partly')}: 2 threads {report.speedup_2_threads:.2f}x "
        "as fast as 1"
    )
    rows = [
        ("stage", f"{report.stage} ({report.spec})"),
        ("frames", f"{report.frames} generated {report.size} {report.pix_fmt} frames"),
        ("picklable", _yes(report.picklable)),
        ("deterministic", _yes(report.deterministic)),
        ("frame-independent", independent),
        ("any order", _yes(report.order_independent)),
        ("thread-safe", _yes(report.thread_safe)),
        ("releases the GIL", speed),
        ("recommendation", f"{report.recommendation}: {report.reason}"),
    ]
    for name, value in rows:
        print(f"{name:<18} {value}")
    for problem in report.problems:
        print(f"problem: {problem}")
    print("verdict: " + ("safe for the layouts it claims" if report.ok else "NOT safe"))
    return 0 if report.ok else 1


def _cmd_workloads(args: argparse.Namespace) -> int:
    from .workloads import WORKLOADS

    width = max(len(name) for name in WORKLOADS)
    for w in WORKLOADS.values():
        saves = f", save every {w.save_every}" if w.save_every else ""
        samples = f", samples {w.samples}" if w.samples > 1 else ""
        preset = f", x264 {w.preset}" if w.preset else ""
        print(
            f"{w.name:<{width}}  particles {w.particles}{samples}, glow {w.glow}{saves}{preset}: "
            f"{w.summary}"
        )
    return 0


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one clean shutdown is enough
    raise Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`); return the exit code."""
    args = _build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code: int = args.func(args)
        return code
    except PipelineError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Interrupted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted by SIGINT", file=sys.stderr)
        return 130
    except BrokenPipeError:  # our stdout closed early (e.g. piped into `head`)
        return 1
    except Exception as exc:  # a bug of ours: still one line, the traceback on request
        if args.debug:
            traceback.print_exc()
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (--debug shows where)", file=sys.stderr
        )
        return 1
