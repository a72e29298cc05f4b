"""Timelines in Chrome's trace-event format (`vidpipe run --trace` writes `DIR/trace.json`).

Components time their phases with `now()` and always sum them (a few clock reads a frame); when
tracing is on in a process, `span()` also records the phase as a trace event on the calling
thread's track, and `counter()` records a value over time (queue depths). Each process writes
its events to a file of its own (`write()`); the process that started the run merges them
(`merge()`). The clock is `perf_counter_ns`, CLOCK_MONOTONIC on Linux: one clock for every
process of the machine, so processes line up on one timeline. Open the file in Perfetto
(ui.perfetto.dev) or chrome://tracing.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..plan.outdir import atomic_write_bytes

__all__ = [
    "active",
    "counter",
    "merge",
    "name_process",
    "now",
    "session",
    "span",
    "start",
    "write",
]

_events: list[dict[str, Any]] | None = None
_threads: dict[int, str] = {}
_named: dict[int, str] = {}  # other processes this one names (`name_process`)
_role = ""


def now() -> int:
    """The shared clock, in nanoseconds."""
    return time.perf_counter_ns()


def start(role: str) -> None:
    """Record trace events in this process, which `role` names on the timeline."""
    global _events, _role
    _events, _role = [], role
    _threads.clear()
    _named.clear()


def active() -> bool:
    """Whether this process is recording trace events."""
    return _events is not None


def span(name: str, cat: str, begin: int, end: int, **args: Any) -> None:
    """Record that the calling thread spent `begin`..`end` (from `now()`) on `name`."""
    if _events is None:
        return
    tid = threading.get_native_id()
    if tid not in _threads:
        _threads[tid] = threading.current_thread().name
    event = {
        "name": name,
        "cat": cat,
        "ph": "X",
        "ts": begin / 1000,
        "dur": (end - begin) / 1000,
        "pid": os.getpid(),
        "tid": tid,
    }
    if args:
        event["args"] = args
    _events.append(event)


def counter(name: str, value: float, pid: int | None = None) -> None:
    """Record the current value of `name` (a queue depth) on the counter track of this process,
    or of process `pid` (one this process watches, such as an ffmpeg child)."""
    if _events is not None:
        _events.append(
            {
                "name": name,
                "ph": "C",
                "ts": now() / 1000,
                "pid": pid or os.getpid(),
                "args": {name: value},
            }
        )


def name_process(pid: int, name: str) -> None:
    """Name process `pid` on the timeline (one that records no events of its own: ffmpeg)."""
    if _events is not None:
        _named[pid] = name


def write(folder: Path) -> None:
    """Write this process's events to `folder/<pid>.json` and stop recording."""
    global _events
    if _events is None:
        return
    pid = os.getpid()
    meta: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": pid, "args": {"name": f"{_role} ({pid})"}}
    ]
    meta += [
        {"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}
        for tid, name in _threads.items()
    ]
    meta += [
        {"name": "process_name", "ph": "M", "pid": other, "args": {"name": f"{name} ({other})"}}
        for other, name in _named.items()
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{pid}.json").write_text(json.dumps(meta + _events))
    _events = None


def merge(folder: Path, out: Path) -> None:
    """Merge the per-process files in `folder` (`<pid>.json`, what `write` names them) into
    one trace file `out`, atomically. A file of another name there is not a part: not ours."""
    events: list[dict[str, Any]] = []
    for part in sorted(folder.glob("*.json")):
        if part.stem.isdigit():
            events.extend(json.loads(part.read_text()))
    trace = {"traceEvents": events, "displayTimeUnit": "ms"}
    atomic_write_bytes(out, json.dumps(trace).encode())


@contextlib.contextmanager
def session(role: str, folder: Path | None) -> Iterator[None]:
    """Trace this process as `role` into `folder` for the block; nothing when `folder` is None."""
    if folder is None:
        yield
        return
    start(role)
    try:
        yield
    finally:
        write(folder)
