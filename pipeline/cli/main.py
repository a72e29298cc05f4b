"""The `vidpipe` command line: `run`, `compare`, `predict`, `probe`, `layouts`, `stages`,
`check-stage`, `workloads`.

Exit codes: 0 success; 2 bad input or usage (one `error: ...` line, no traceback); 1 processing
failed; 130 Ctrl-C; 143 SIGTERM; 129 SIGHUP (the terminal closed, handled as SIGTERM).
`--debug` adds the traceback for failures.
"""

from __future__ import annotations

import argparse
import io
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from ..errors import Interrupted, PipelineError, interrupt_on, user_limit
from .args import build_parser
from .commands import COMMANDS

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`); return the exit code.

    A failed run whose stage is stuck in a thread that cannot be stopped, or any run whose
    stage left a thread running after its teardown (named in a warning), ends the process at
    once, after cleaning up, instead of returning (`leave_stuck_threads`): the interpreter
    would wait for that thread at exit for ever.
    """
    _print_any_name()
    code = _main(argv)
    from ..engine import leftovers

    # What stages left that no run settled: those `predict` and `compare --predict` set up
    # to measure them.
    leftovers.warn(leftovers.settle())
    if code != 0 or leftovers.threads_left():
        leftovers.leave_stuck_threads(code)
    return code


def _print_any_name() -> None:
    """Let stdout and stderr print any path: a terminal whose encoding cannot show a name
    (PYTHONIOENCODING=ascii and `out-é`) gets it with backslash escapes, instead of failing a
    finished run on its last line. Error handlers already chosen (surrogateescape for names
    that are not UTF-8) are kept."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


def _resolve_paths(args: argparse.Namespace) -> None:
    """The input, `--out` and `--from` made absolute once, before any user code runs (a stage
    may change the current folder in `setup()`)."""
    from ..plan.outdir import absolute

    for name, option in (("input", "input"), ("out", "--out"), ("from_dir", "--from")):
        value = getattr(args, name, None)
        if isinstance(value, Path):
            setattr(args, name, absolute(value, option))


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser(COMMANDS).parse_args(argv)
    # Ctrl-C as `Interrupted` too: a KeyboardInterrupt a stage raises itself is then its failure.
    interrupt_on(signal.SIGINT)
    interrupt_on(signal.SIGTERM)
    interrupt_on(signal.SIGHUP)  # a closed terminal: the same clean shutdown
    try:
        _resolve_paths(args)
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
    except Exception as exc:  # a bug of ours, unless a limit of the user's machine was reached
        limit = user_limit(exc)
        if limit is not None:
            if args.debug:
                traceback.print_exc()
            print(f"error: {limit}", file=sys.stderr)
            return 1
        if args.debug:
            traceback.print_exc()
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (--debug shows where)", file=sys.stderr
        )
        return 1
