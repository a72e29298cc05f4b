"""The `vidpipe` command line's parser.

Usage errors print one `error: ...` line and exit 2 (`_Parser`). The options shared by `run`
and `compare` are one table (`pipeline.cli.job_options`), so that `compare` can hand the same
options to every `vidpipe run` it starts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ..config.layout_file import is_layout_file
from ..errors import did_you_mean
from .job_options import DEFAULTS, add_job_options, names

__all__ = ["Handlers", "build_parser"]

#: What runs each command: its name to a function of the parsed arguments, returning the exit
#: code.
Handlers = Mapping[str, Callable[[argparse.Namespace], int]]


def _path(value: str) -> Path:
    """A path argument; an empty one is refused: `Path("")` is the current folder, which
    nobody means by typing `--out ""` (an unset shell variable, say)."""
    if not value:
        raise argparse.ArgumentTypeError("is empty; give a path")
    return Path(value)


class _NotParsed(Exception):
    """A usage error met while `_Parser` looks for unknown options."""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one `error: ...` line, exit 2; an unknown option is named before any
    missing argument (argparse checks those first: `vidpipe --bogus` would otherwise say
    that COMMAND is required)."""

    _given: list[str] | None = None
    _lenient = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        if self._lenient:
            raise _NotParsed(message)
        if message.startswith("the following arguments are required"):
            unknown = self._unknown_options()
            if unknown:
                message = f"unrecognized arguments: {' '.join(unknown)}"
        self.exit(2, f"error: {message}\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's check of a value against an option's choices (a command's name too),
        naming the choice close to a misspelt value."""
        choices = action.choices
        if choices is not None and value not in choices:
            close = did_you_mean(str(value), [str(choice) for choice in choices])
            names = ", ".join(map(repr, choices))
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r}{close} (choose from {names})"
            )

    def _unknown_options(self) -> list[str]:
        """The options in the arguments just parsed that this parser does not know, found by
        parsing them again with no argument required."""
        given = self._given or []
        required = [action for action in self._actions if action.required]
        self._lenient = True
        try:
            for action in required:
                action.required = False
            _, extras = super().parse_known_args(given, argparse.Namespace())
        except _NotParsed:
            return []
        finally:
            for action in required:
                action.required = True
            self._lenient = False
        return [arg for arg in extras if arg.startswith("-") and arg != "-"]


def _add_run(sub: Any, handlers: Handlers) -> None:
    p = sub.add_parser("run", help="process a video with the compress and render tasks")
    p.add_argument("input", type=_path, help="input video file")
    p.add_argument("--out", type=_path, required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--layout",
        default=DEFAULTS.layout,
        help="where work runs: serial, threads, processes, hybrid, pool, segments, ray, or a "
        f"layout file ending in .toml (see `vidpipe layouts`) ({DEFAULTS.layout})",
    )
    add_job_options(p)
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
    p.add_argument("input", type=_path, help="input video file")
    p.add_argument(
        "--layouts",
        type=_layouts,
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
        type=_path,
        default=Path("compare_out"),
        metavar="DIR",
        help="where results go (compare_out)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite results, charts and runs in DIR that vidpipe did not write",
    )
    p.add_argument(
        "--predict",
        action="store_true",
        help="put the model's predicted speedup beside each measured one (see `vidpipe predict`)",
    )
    add_job_options(p)
    p.set_defaults(func=handlers["compare"])


def _layouts(text: str) -> tuple[str, ...]:
    """`--layouts A,B,...`: each layout once (a layout file once by where it is, whatever the
    path it is given by), and at least one: an empty list would mean every layout."""
    given = [name.strip() for name in text.split(",")]
    if not any(given):
        raise argparse.ArgumentTypeError(
            f"no layout named in '{text}': give names like serial,threads (see `vidpipe "
            "layouts`), or leave the option out for every layout"
        )
    if not all(given):
        raise argparse.ArgumentTypeError(f"an empty layout name in '{text}'")
    seen: dict[str, str] = {}
    for name in given:
        key = str(Path(name).resolve()) if is_layout_file(name) else name
        if key in seen:
            also = f" (as '{seen[key]}')" if seen[key] != name else ""
            raise argparse.ArgumentTypeError(f"layout '{name}' is named twice{also}")
        seen[key] = name
    return tuple(given)


def _cores(text: str) -> tuple[int, ...]:
    """`--cores N,N,...`: each count from 1 to 4096, once (as `--layouts` refuses a layout
    named twice: a repeat is a typo, not a request), in increasing order."""
    counts = names(text)
    if not counts or not all(c.isdigit() and 0 < int(c) <= 4096 for c in counts):
        raise argparse.ArgumentTypeError(
            f"expected core counts from 1 to 4096 like 2,4,8, got '{text}'"
        )
    seen: set[int] = set()
    for count in map(int, counts):
        if count in seen:
            raise argparse.ArgumentTypeError(f"core count {count} is named twice in '{text}'")
        seen.add(count)
    return tuple(sorted(seen))


def _add_predict(sub: Any, handlers: Handlers) -> None:
    p = sub.add_parser(
        "predict",
        help="predict each layout's wall time and speedup on N cores from one serial run",
        description="Runs the job once under serial (in a temporary folder, removed after), "
        "measures how this machine starts worker processes and how much the stages hold the "
        "GIL, and predicts every layout's wall time on each core count with the model of "
        "pipeline/lab/model.py. Check it with `vidpipe compare --predict`.",
    )
    p.add_argument("input", type=_path, help="input video file")
    p.add_argument(
        "--cores",
        type=_cores,
        default=None,
        metavar="N,N,...",
        help="core counts to predict for (default: this machine's, 4, 8, 16)",
    )
    p.add_argument(
        "--layouts",
        type=_layouts,
        default=None,
        metavar="A,B,...",
        help="layouts to predict, layout files included (default: every registered layout but "
        "ray, which the model leaves out)",
    )
    p.add_argument(
        "--from",
        dest="from_dir",
        type=_path,
        metavar="DIR",
        help="predict from the serial run whose report.json is in DIR, made with these "
        "options, instead of running one",
    )
    p.add_argument("--json", action="store_true", help="print the predictions as one JSON object")
    add_job_options(p)
    p.set_defaults(func=handlers["predict"])


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
    _add_predict(sub, handlers)
    p = sub.add_parser("probe", help="print the input's metadata as JSON")
    p.add_argument("input", type=_path)
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
