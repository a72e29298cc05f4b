"""The commands of `vidpipe`: each a function of the parsed arguments, returning the exit
code. Each imports what it needs when it runs, so that listing commands start fast."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, PipelineError
from .job_options import job_arguments, run_options
from .output import print_report, resume_notes

if TYPE_CHECKING:
    from ..plan.planner import RunPlan

__all__ = ["COMMANDS"]


def _cmd_run(args: argparse.Namespace) -> int:
    from ..job import execute, plan
    from ..report.reporters import NullReporter, Reporter

    options = run_options(args)
    job = plan(args.input, options)
    if options.resume:
        if not job.tasks:
            print(
                f"nothing to do: {options.out_dir} already holds this finished job "
                f"({', '.join(r.output for r in job.finished.values())})"
            )
            return 0
        for note in resume_notes(job):
            print(f"resume: {note}")
    reporter: Reporter = NullReporter()
    bars = None
    if not args.no_progress and sys.stderr.isatty():
        from .progress import TqdmReporter

        reporter = bars = TqdmReporter(list(options.tasks))
    try:
        report = execute(job, reporter)
    finally:
        if bars is not None:
            bars.close()
    print_report(report)
    if options.trace:
        print(f"trace: {options.out_dir / 'trace.json'} (open in https://ui.perfetto.dev)")
    print(f"report: {options.out_dir / 'report.json'}")
    return 0


#: The charts `compare` draws into its output folder.
_CHARTS = ("speedup.png", "timeline.png")


def _compare_job(args: argparse.Namespace) -> tuple[list[str], list[str], RunPlan]:
    """`compare`'s layouts, the job options it hands every run, and the job as planned with
    compare's pins (what the model predicts from). Bad options fail here, in one line, not
    after the first of many runs."""
    from ..config.layout_file import is_layout_file, read_layout_file
    from ..config.workloads import find_workload
    from ..lab.compare import PINNED_OPTIONS
    from ..layouts import LAYOUTS, load_layout
    from ..plan.planner import plan

    # Layouts that need an extra (a cluster engine) are compared only when asked for.
    layouts = list(args.layouts or (name for name, info in LAYOUTS.items() if not info.extra))
    for layout in layouts:
        # Unknown or uninstalled layouts and bad layout files fail before any run.
        if is_layout_file(layout):
            read_layout_file(layout)
        else:
            load_layout(layout)
    if args.repeat < 1:
        raise ConfigError(f"--repeat must be at least 1, got {args.repeat}")
    find_workload(args.workload)
    given = job_arguments(args)
    pins = {f[2:].replace("-", "_"): int(v) for f, v in PINNED_OPTIONS.items() if f not in given}
    serial = argparse.Namespace(**{**vars(args), **pins, "layout": "serial", "trace": False})
    return layouts, given, plan(args.input, run_options(serial))


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..config.settings import usable_cores
    from ..lab.compare import compare
    from ..lab.forecast import default_cores, forecast
    from ..lab.plots import pyplot, speedup_chart
    from ..lab.timeline import timeline_chart
    from ..plan import ownership

    layouts, given, job = _compare_job(args)
    pyplot()  # the charts' library, checked before the first run rather than after the last
    predicted = _predicted_layouts(None) + [name for name in layouts if name.endswith(".toml")]
    out = args.out
    written = tuple(out / name for name in ("results.json", "results.md", *_CHARTS))
    claim = ownership.Claim(files=written, fresh=written, forbidden=(out / "runs",))
    with ownership.hold(out, claim, source=args.input, force=args.force):
        summaries, runs = compare(
            args.input,
            layouts,
            repeat=args.repeat,
            out_dir=out,
            options=[*given, *(["--force"] if args.force else [])],
            # With --predict, the core counts `predict` shows by default, for the docs.
            forecaster=lambda report: forecast(
                job,
                report,
                layouts=predicted,
                cores=default_cores() if args.predict else (),
                measure=args.predict,
            ),
            progress=lambda line: print(line, file=sys.stderr),
        )
        speedup_chart(summaries, usable_cores(), out / "speedup.png")
        traces = {r.layout: Path(r.out_dir) / "trace.json" for r in runs if r.traced}
        timeline_chart(traces, out / "timeline.png")
    print(os.fsdecode((args.out / "results.md").read_bytes()))
    print(
        f"results: {args.out / 'results.json'}, {args.out / 'speedup.png'}, "
        f"{args.out / 'timeline.png'}"
    )
    differ = [
        f"{s.layout} (task {', '.join(s.frames_differ)})" for s in summaries if s.frames_differ
    ]
    if differ:
        raise PipelineError(
            f"frames differ from the serial run's under {'; '.join(differ)}: check the task's "
            "stages with `vidpipe check-stage STAGE`"
        )
    return 0


def _predicted_layouts(chosen: tuple[str, ...] | None) -> list[str]:
    """The layouts to predict: those named (each checked), else every registered one the
    model predicts."""
    from ..config.layout_file import is_layout_file, read_layout_file
    from ..lab.model import LAYOUTS as PREDICTED
    from ..layouts import check_layout

    if not chosen:
        return list(PREDICTED)
    for layout in chosen:
        # Unknown layouts and bad layout files fail here, before the serial run.
        if is_layout_file(layout):
            read_layout_file(layout)
        else:
            check_layout(layout)
        if layout not in PREDICTED and not layout.endswith(".toml"):
            raise ConfigError(
                f"layout '{layout}' is not predicted: the model leaves out a Ray instance's "
                "start-up (see pipeline/lab/model.py)"
            )
    return ["serial", *(name for name in chosen if name != "serial")]


def _cmd_predict(args: argparse.Namespace) -> int:
    from ..lab.forecast import default_cores, forecast, forecast_table, measure_serial, read_serial
    from ..plan.planner import plan

    layouts = _predicted_layouts(args.layouts)
    options = run_options(
        argparse.Namespace(**{**vars(args), "out": Path("."), "layout": "serial", "trace": False})
    )
    job = plan(args.input, options)
    if args.from_dir is not None:
        report = read_serial(args.from_dir, job)
    else:
        print("predict: measuring a serial run of the job...", file=sys.stderr)
        report = measure_serial(args.input, options)
    print("predict: measuring the stages' GIL share and worker start-up...", file=sys.stderr)
    result = forecast(job, report, layouts=layouts, cores=args.cores or default_cores())
    print(json.dumps(result.to_dict(), indent=2) if args.json else forecast_table(result))
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from ..media.probe import count_decoded_frames, probe

    info = probe(args.input)
    data = info.to_dict()
    if not args.fast:
        data["frames_decoded"] = count_decoded_frames(args.input)
    print(json.dumps(data, indent=2))
    return 0


def _cmd_layouts(args: argparse.Namespace) -> int:
    from ..layouts import CUSTOM, LAYOUTS

    width = max(len(name) for name in [*LAYOUTS, "FILE.toml"])
    for info in LAYOUTS.values():
        needs = f" (needs the '{info.extra}' extra)" if info.extra else ""
        print(f"{info.name:<{width}}  {info.summary}{needs}")
    print(f"{'FILE.toml':<{width}}  {CUSTOM.summary} (see examples/layouts/)")
    return 0


def _cmd_stages(args: argparse.Namespace) -> int:
    from ..stages import BUILTIN_STAGES

    width = max(len(name) for name in BUILTIN_STAGES)
    for name, cls in BUILTIN_STAGES.items():
        order = "frame-independent" if cls.frame_independent else "in order"
        formats = ", ".join(sorted(f.value for f in cls.accepts))
        print(f"{name:<{width}}  {cls.summary()} [{order}; takes {formats}]")
    return 0


def _yes(value: bool | None, unknown: str = "not checked") -> str:
    return unknown if value is None else "yes" if value else "NO"


#: check-stage generates all its frames up front: at most this many, and this many bytes.
_MAX_CHECK_FRAMES = 1000
_MAX_CHECK_BYTES = 1 << 30


def _cmd_check_stage(args: argparse.Namespace) -> int:
    from ..config.settings import MAX_FRAME_SIDE
    from ..lab.stagecheck import check_stage
    from ..stages.loader import parse_stage_spec

    width, _, height = args.size.partition("x")
    side = MAX_FRAME_SIDE
    if not (width.isdigit() and height.isdigit() and min(int(width), int(height)) >= 2):
        raise ConfigError(f"--size must be WIDTHxHEIGHT, at least 2x2, got '{args.size}'")
    if max(int(width), int(height)) > side:
        raise ConfigError(f"--size must be at most {side}x{side}, got '{args.size}'")
    if not 2 <= args.frames <= _MAX_CHECK_FRAMES:
        raise ConfigError(f"--frames must be between 2 and {_MAX_CHECK_FRAMES}, got {args.frames}")
    held = args.frames * int(width) * int(height) * 3
    if held > _MAX_CHECK_BYTES:
        raise ConfigError(
            f"--frames {args.frames} of --size {args.size} would hold {held / 1e9:.1f} GB of "
            f"frames; check-stage keeps at most {_MAX_CHECK_BYTES / 1e9:.0f} GB"
        )
    spec = parse_stage_spec(args.stage, f"check-stage '{args.stage}'")
    report = check_stage(spec, width=int(width), height=int(height), count=args.frames)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.ok else 1
    independent = "declared yes" if report.frame_independent else "declared no: runs in order"
    if report.speedup_2_threads is not None and report.gil_share is not None:
        speed = (
            f"{_yes(report.releases_gil, 'partly')}: holds it {report.gil_share:.0%} of its CPU "
            f"time; 2 threads {report.speedup_2_threads:.2f}x as fast as 1 "
            f"({report.machine_speedup_2_threads:.2f}x on GIL-free work)"
        )
    elif report.gil_share is not None:
        speed = f"holds it {report.gil_share:.0%} of its CPU time; 2 threads: not measured"
    else:
        speed = "not measured"
    rows = [
        ("stage", f"{report.stage} ({report.spec})"),
        ("frames", f"{report.frames} generated {report.size} frames, {report.pix_fmt}"),
        ("cost", f"{report.seconds_per_frame * 1e3:.3f} ms a frame on one thread"),
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
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"problem: {problem}")
    print("verdict: " + ("safe for the layouts it claims" if report.ok else "NOT safe"))
    return 0 if report.ok else 1


def _cmd_workloads(args: argparse.Namespace) -> int:
    from ..config.workloads import WORKLOADS

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


#: Each command's function, by name (the parser's `func` default, `pipeline.cli.args`).
COMMANDS = {
    "run": _cmd_run,
    "compare": _cmd_compare,
    "predict": _cmd_predict,
    "probe": _cmd_probe,
    "layouts": _cmd_layouts,
    "stages": _cmd_stages,
    "check-stage": _cmd_check_stage,
    "workloads": _cmd_workloads,
}
