"""The `vidpipe` command line: `run`, `compare`, `probe`, `layouts`, `stages`, `check-stage`,
`workloads`.

Exit codes: 0 success; 2 bad input or usage (one `error: ...` line, no traceback); 1 processing
failed; 130 Ctrl-C; 143 SIGTERM. `--debug` adds the traceback for failures.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from .cli_args import build_parser, job_arguments, run_options
from .errors import ConfigError, Interrupted, PipelineError

if TYPE_CHECKING:
    from .planner import RunPlan

__all__ = ["main"]


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

    options = run_options(args)
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


#: The charts `compare` draws into its output folder.
_CHARTS = ("speedup.png", "timeline.png")


def _cmd_compare(args: argparse.Namespace) -> int:
    from . import ownership
    from .compare import compare
    from .layouts import LAYOUTS, load_layout
    from .media.probe import probe as probe_input
    from .plots import speedup_chart, timeline_chart
    from .settings import usable_cores
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
    run_options(argparse.Namespace(**{**vars(args), "layout": "serial", "trace": False}))
    probe_input(args.input)
    out = args.out
    written = tuple(out / name for name in ("results.json", "results.md", *_CHARTS))
    claim = ownership.Claim(files=written, fresh=written, forbidden=(out / "runs",))
    with ownership.hold(out, claim, source=args.input, force=args.force):
        summaries, runs = compare(
            args.input,
            layouts,
            repeat=args.repeat,
            out_dir=out,
            options=[*job_arguments(args), *(["--force"] if args.force else [])],
            progress=lambda line: print(line, file=sys.stderr),
        )
        speedup_chart(summaries, usable_cores(), out / "speedup.png")
        traces = {r.layout: Path(r.out_dir) / "trace.json" for r in runs if r.traced}
        timeline_chart(traces, out / "timeline.png")
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


#: Each command's function, for the parser (`pipeline.cli_args`).
_COMMANDS = {
    "run": _cmd_run,
    "compare": _cmd_compare,
    "probe": _cmd_probe,
    "layouts": _cmd_layouts,
    "stages": _cmd_stages,
    "check-stage": _cmd_check_stage,
    "workloads": _cmd_workloads,
}


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one clean shutdown is enough
    raise Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`); return the exit code.

    A failed run whose stage is stuck in a thread that cannot be stopped ends the process at
    once, after cleaning up, instead of returning (`leave_stuck_threads`).
    """
    code = _main(argv)
    if code != 0:
        from .supervisor import leave_stuck_threads

        leave_stuck_threads(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser(_COMMANDS).parse_args(argv)
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
    except SystemExit as exc:  # never ours to raise past this point: whose it was is unknown
        print(f"error: unexpected exit ({exc.code}) (--debug shows where)", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return 1
    except Exception as exc:  # a bug of ours: still one line, the traceback on request
        if args.debug:
            traceback.print_exc()
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (--debug shows where)", file=sys.stderr
        )
        return 1
