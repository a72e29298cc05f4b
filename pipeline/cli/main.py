"""The `vidpipe` command line: `run`, `compare`, `predict`, `probe`, `layouts`, `stages`,
`check-stage`, `workloads`.

Exit codes: 0 success; 2 bad input or usage (one `error: ...` line, no traceback); 1 processing
failed; 130 Ctrl-C; 143 SIGTERM; 129 SIGHUP (the terminal closed, handled as SIGTERM).
`--debug` adds the traceback for failures.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from ..errors import Interrupted, PipelineError, interrupt_on
from .args import build_parser
from .commands import COMMANDS

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`); return the exit code.

    A failed run whose stage is stuck in a thread that cannot be stopped ends the process at
    once, after cleaning up, instead of returning (`leave_stuck_threads`).
    """
    code = _main(argv)
    if code != 0:
        from ..engine.supervisor import leave_stuck_threads

        leave_stuck_threads(code)
    return code


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
    except Exception as exc:  # a bug of ours: still one line, the traceback on request
        if args.debug:
            traceback.print_exc()
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (--debug shows where)", file=sys.stderr
        )
        return 1
