"""Fault injection for tests: make a run fail in a chosen way, at a chosen place.

Set `VIDPIPE_FAULT=POINT:TASK:FRAME:ACTION` in the environment of `vidpipe run`; every process
of the run inherits it. The first time task TASK reaches frame FRAME or later at POINT, in a
process, ACTION happens:

- `stage`, after the stages, in the process that ran them: `raise` makes the stage fail,
  `kill` SIGKILLs that process (a task process, a pool or segment worker);
- `encoder` / `decoder`, after the frame is encoded / decoded: `kill` kills that ffmpeg;
- `saver`, the save job of that frame: `raise` makes it fail;
- `progress`, the progress thread's next publication: `raise` makes it fail.

Unset (always, outside tests), every check is one comparison with None.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["InjectedFault", "configured", "fault_at"]

ENV = "VIDPIPE_FAULT"
POINTS = ("stage", "encoder", "decoder", "saver", "progress")


class InjectedFault(RuntimeError):
    """The error an injected `raise` fault raises."""


@dataclass(frozen=True)
class _Fault:
    point: str
    task: str
    frame: int
    action: str


def _parse(text: str | None) -> _Fault | None:
    if not text:
        return None
    parts = text.split(":")
    if len(parts) != 4 or parts[0] not in POINTS or parts[3] not in ("raise", "kill"):
        raise ConfigError(
            f"{ENV}={text!r}: expected POINT:TASK:FRAME:raise|kill "
            f"with POINT one of {', '.join(POINTS)}"
        )
    try:
        frame = int(parts[2])
    except ValueError:
        raise ConfigError(f"{ENV}={text!r}: FRAME must be a number") from None
    return _Fault(parts[0], parts[1], frame, parts[3])


_UNSET = _Fault("", "", 0, "")
_FAULT: _Fault | None = _UNSET


def configured() -> _Fault | None:
    """The fault set in the environment, parsed once; `ConfigError` if it is malformed."""
    global _FAULT
    if _FAULT is _UNSET:
        _FAULT = _parse(os.environ.get(ENV))
    return _FAULT


def fault_at(point: str, task: str, frame: int, kill: Callable[[], None] | None = None) -> None:
    """Carry out the injected fault if it is set for this point and task, from this frame on."""
    global _FAULT
    fault = configured()
    if fault is None or fault.point != point or fault.task != task or frame < fault.frame:
        return
    _FAULT = None  # once per process
    if fault.action == "raise":
        raise InjectedFault(f"injected fault: {point} of task '{task}' at frame {frame}")
    if kill is not None:
        kill()
    else:
        os.kill(os.getpid(), signal.SIGKILL)
