"""The options of a job, shared by `vidpipe run` and `vidpipe compare` (which hands the same
options to every run it starts), and the `RunOptions` they ask for.

Their defaults are `RunOptions`'s own, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ..config.options import RunOptions
from ..config.settings import (
    PRESETS,
    AnimationSettings,
    EncoderSettings,
    StageSpec,
    StartMethod,
    Transport,
)

__all__ = ["DEFAULTS", "add_job_options", "job_arguments", "names", "run_options"]


def names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


#: The defaults of every option: those of `RunOptions` and the settings it holds.
DEFAULTS = _D = RunOptions(out_dir=Path())
_E, _A = _D.encoder, _D.animation

# The options of a job, shared by `run` and `compare` (which passes them on to every run).
_JOB_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    (
        "--tasks",
        {
            "type": names,
            "default": _D.tasks,
            "help": f"comma-separated tasks (default: {','.join(_D.tasks)})",
        },
    ),
    ("--height", {"type": int, "help": "compress: resize to this height (keeps aspect)"}),
    (
        "--crf",
        {"type": int, "default": _E.crf, "help": f"x264 constant rate factor, 0-51 ({_E.crf})"},
    ),
    (
        "--preset",
        {
            "choices": PRESETS,
            "metavar": "NAME",
            "help": f"x264 preset ({_E.preset}, or the workload's)",
        },
    ),
    (
        "--encoder-threads",
        {
            "type": int,
            "default": _E.threads,
            "metavar": "N",
            "help": f"x264 threads per encoder; 0 lets x264 choose ({_E.threads})",
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
        {
            "type": int,
            "metavar": "N",
            "help": f"render: particles, computed in pure Python ({_A.particles})",
        },
    ),
    (
        "--samples",
        {
            "type": int,
            "metavar": "N",
            "help": "render: instants each particle's position is averaged over per frame "
            f"(motion smoothing), computed in pure Python ({_A.samples})",
        },
    ),
    (
        "--glow",
        {"type": int, "metavar": "N", "help": f"render: glow blur passes, in OpenCV ({_A.glow})"},
    ),
    ("--seed", {"type": int, "default": _A.seed, "help": f"render: animation seed ({_A.seed})"}),
    (
        "--save-every",
        {
            "type": int,
            "metavar": "N",
            "help": f"thumbnail and checkpoint every N frames ({_D.save_every})",
        },
    ),
    (
        "--start-method",
        {
            "default": _D.start_method.value,
            "choices": [m.value for m in StartMethod],
            "help": f"how worker processes start ({_D.start_method.value})",
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
            "default": _D.segment_frames,
            "metavar": "N",
            "help": "encode each task in pieces of at least N frames, cut at keyframes, so "
            "that --resume can continue after the last finished one; 0: one piece "
            f"({_D.segment_frames})",
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
            "default": _D.stall_timeout,
            "metavar": "SECONDS",
            "help": "fail the run when no frame moves for this long, naming a stopped process; "
            f"0: never ({_D.stall_timeout:g})",
        },
    ),
    (
        "--transport",
        {
            "default": _D.transport.value,
            "choices": [t.value for t in Transport],
            "help": f"pool: how frames travel between processes ({_D.transport.value})",
        },
    ),
]


def add_job_options(p: argparse.ArgumentParser) -> None:
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


def run_options(args: argparse.Namespace) -> RunOptions:
    """The RunOptions a parsed `run` or `compare` command line asks for, workload applied."""
    from ..config.workloads import apply_workload

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
            crf=args.crf, preset=args.preset or _E.preset, threads=args.encoder_threads
        ),
        animation=animation,
        save_every=args.save_every if args.save_every is not None else _D.save_every,
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
    from ..stages.loader import parse_task_stage  # imports the stages (and OpenCV)

    return tuple(parse_task_stage(value) for value in values)
