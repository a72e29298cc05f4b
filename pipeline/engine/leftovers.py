"""What a stage leaves running after its `teardown()`: threads and child processes.

A user's stage may start a thread or a child process (in `setup()`, or later) and never stop
it. A thread that is not a daemon would hold the interpreter at exit, which joins every such
thread, and with it the run (a worker process that cannot exit passes for a stall); a child
would outlive the run. A thread cannot be stopped, but vidpipe need not wait for it; a child
can be killed. Either is the run's business, and named in one warning line per stage.

A `StageWatch` notes the threads and child processes alive before a stage's `setup()`; its
`end()`, after the stage's `teardown()`, records those that appeared meanwhile. Once the run
(or a worker's part of it) is over and vidpipe's own threads and processes have stopped,
`settle()` kills the recorded children still running and returns, per stage, what was left
(`Leftover`). A worker process hands its findings to its parent (`adopt`), so that the run
warns once (`warn`) for all its workers. `leave_stuck_threads` then ends the process without
joining the threads left.

What runs in the window and is vidpipe's is told apart: ffmpeg children (`pipeline.media.ffmpeg`
knows them), multiprocessing's helper processes, and the threads of vidpipe's frame pools
(`own_thread`); worker processes are stopped and joined before `settle()`.
"""

from __future__ import annotations

import atexit
import contextlib
import inspect
import multiprocessing
import os
import sys
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a stage is watched: listing commands never load psutil
    import psutil

__all__ = [
    "Leftover",
    "StageWatch",
    "adopt",
    "leave_stuck_threads",
    "own_thread",
    "settle",
    "threads_left",
    "warn",
]

#: Seconds a child of a stage gets to exit after SIGTERM before it is killed.
CHILD_GRACE = 1.0


@dataclass(frozen=True)
class Leftover:
    """What `stage` left running after its `teardown()`: threads (their names) and child
    processes (`name[pid]`, killed by then)."""

    stage: str
    threads: tuple[str, ...] = ()
    children: tuple[str, ...] = ()

    def line(self) -> str:
        """The warning line that names what was left and what vidpipe did about it."""
        threads, children = self.threads, self.children
        left = []
        if threads:
            left.append(f"{_count(len(threads), 'thread')} running ({_names(threads)})")
        if children:
            count = _count(len(children), "child process", "child processes")
            left.append(f"{count} running ({_names(children)})")
        if threads and children:
            processes = "the process" if len(children) == 1 else "the processes"
            done = f"killed {processes} and exits without waiting for the thread"
            done += "s" if len(threads) > 1 else ""
        elif children:
            done = f"killed {_it(children, 'them')}"
        else:
            done = f"exits without waiting for {_it(threads, 'them')}"
        return (
            f"warning: stage '{self.stage}' left {' and '.join(left)} after teardown(); "
            f"vidpipe {done}: stop {_it(threads + children, 'them')} in teardown()"
        )


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _it(items: tuple[str, ...], many: str) -> str:
    return "it" if len(items) == 1 else many


def _names(names: tuple[str, ...]) -> str:
    """Each name once, in order, with how often it came (segments: one thread per worker)."""
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    shown = [name if n == 1 else f"{name} x{n}" for name, n in seen.items()]
    if len(shown) > _SHOWN:  # one line, however many a stage started (one each setup())
        shown[_SHOWN - 1 :] = [f"and {len(shown) - _SHOWN + 1} more"]
    return ", ".join(shown)


#: Names a warning line shows at most.
_SHOWN = 4


_lock = threading.Lock()
#: What watched stages started (`_Record`s), in the order their chains ended.
_watched: list[_Record] = []
#: What this process's workers reported (`adopt`).
_adopted: list[Leftover] = []
#: vidpipe's own threads that a watch may see start (a frame pool's).
_own: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
#: The threads `settle` found that stages left running.
_left: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
#: The stages `warn` has named.
_warned: set[str] = set()


def own_thread(thread: threading.Thread) -> None:
    """Mark `thread` as vidpipe's, never a stage's leftover."""
    _own.add(thread)


def _vidpipes_thread(thread: threading.Thread) -> bool:
    """Whether `thread` is vidpipe's (or multiprocessing's, such as a queue's feeder): its
    code is, or it was marked so (`own_thread`). A stage's thread runs the stage's code."""
    if thread in _own:
        return True
    code = getattr(thread, "_target", None) or type(thread).run
    module = getattr(code, "__module__", None) or ""
    return module.partition(".")[0] in ("pipeline", "multiprocessing")


def _children() -> list[psutil.Process]:
    import psutil

    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _children_of_this_thread() -> list[psutil.Process] | None:
    """The children the calling thread started, with their descendants; None where the
    kernel does not tell (`/proc/PID/task/TID/children`, Linux)."""
    import psutil

    try:
        path = f"/proc/self/task/{threading.get_native_id()}/children"
        with open(path) as listing:
            pids = listing.read().split()
    except OSError:
        return None
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            child = psutil.Process(int(pid))
            found += [child, *child.children(recursive=True)]
    return found


def _key(proc: psutil.Process) -> tuple[int, float]:
    """A process's identity: a pid may be reused once the process is gone."""
    import psutil

    try:
        return proc.pid, proc.create_time()
    except psutil.Error:
        return proc.pid, 0.0


_Found = tuple[list[threading.Thread], list["psutil.Process"]]


@dataclass(frozen=True)
class _Snapshot:
    """The threads and child processes (by `_key`) of this process at one moment, and those
    of the calling thread's children (None: not known)."""

    threads: frozenset[threading.Thread]
    children: dict[tuple[int, float], psutil.Process]
    mine: dict[tuple[int, float], psutil.Process] | None

    @classmethod
    def take(cls) -> _Snapshot:
        mine = _children_of_this_thread()
        return cls(
            frozenset(t for t in threading.enumerate() if not _vidpipes_thread(t)),
            {_key(p): p for p in _children()},
            None if mine is None else {_key(p): p for p in mine},
        )

    def since(self, earlier: _Snapshot) -> _Found:
        """The threads and children that are here and were not `earlier`."""
        threads = [t for t in self.threads if t not in earlier.threads]
        children = [p for key, p in self.children.items() if key not in earlier.children]
        return threads, children

    def mine_since(self, earlier: _Snapshot) -> _Found:
        """`since`, of the children only those the calling thread started when known: another
        thread (another task's) may start its own meanwhile."""
        threads, children = self.since(earlier)
        if self.mine is not None and earlier.mine is not None:
            children = [p for key, p in self.mine.items() if key not in earlier.mine]
        return threads, children


def _module_of(stage: Any) -> str:
    """The module of a stage's own code: of the plain class or function that
    `pipeline.stages.plain` wraps, when it wraps one."""
    inner = getattr(stage, "_plain", None) or getattr(stage, "_function", None)
    if inspect.isfunction(inner):
        return str(inner.__module__)
    return type(inner if inner is not None else stage).__module__


def _code_module(thread: threading.Thread) -> str:
    """The module of the code `thread` runs."""
    code = getattr(thread, "_target", None) or type(thread).run
    return str(getattr(code, "__module__", None) or "")


@dataclass(frozen=True)
class _Record:
    """What appeared while watched `stages` (their names and modules) ran: in one stage's
    `setup()` (`exact`), or in the chain's life."""

    stages: tuple[str, ...]
    modules: frozenset[str]
    threads: list[threading.Thread]
    children: list[psutil.Process]
    exact: bool

    @property
    def stage(self) -> str:
        """The stage to name, in `f"stage '{...}'"`: "'a' or 'b'" when it cannot be told."""
        return "' or '".join(self.stages)


class StageWatch:
    """Watches a chain of stages from before the first `setup()` to after the last
    `teardown()` (`end`). What appears during a stage's `setup()` (`set_up` is told when it
    returns) is that stage's (of the children, those its thread started, where that is
    known); what appears later (in `process()` or `teardown()`) is one of the chain's. `end`
    records it all for `settle`; once: calling it again does nothing."""

    def __init__(self) -> None:
        self._first = self._last = _Snapshot.take()
        self._records: list[_Record] = []
        self._ended = False

    def set_up(self, stage: Any) -> None:
        """`stage`'s `setup()` has returned (or raised)."""
        now = _Snapshot.take()
        threads, children = now.mine_since(self._last)
        if threads or children:
            modules = frozenset([_module_of(stage)])
            self._records.append(_Record((stage.name,), modules, threads, children, True))
        self._last = now

    def end(self, stages: Sequence[Any]) -> None:
        """The chain's `stages` are torn down: record what they started."""
        if self._ended:
            return
        self._ended = True
        threads, children = _Snapshot.take().since(self._first)
        seen = {t for r in self._records for t in r.threads}
        seen_children = {_key(p) for r in self._records for p in r.children}
        later = (
            [t for t in threads if t not in seen],
            [p for p in children if _key(p) not in seen_children],
        )
        if later[0] or later[1]:
            names = tuple(dict.fromkeys(stage.name for stage in stages))
            modules = frozenset(_module_of(stage) for stage in stages)
            self._records.append(_Record(names, modules, *later, False))
        with _lock:
            _watched.extend(self._records)


def adopt(found: Iterable[Leftover]) -> None:
    """Take in what a worker process of this one found (`settle` returns it again)."""
    with _lock:
        _adopted.extend(found)


def _vidpipes_own() -> set[int]:
    """The pids of children of this process that are vidpipe's: its ffmpeg children, and the
    helper processes multiprocessing keeps for the interpreter's life."""
    from multiprocessing import forkserver, resource_tracker

    from ..media import ffmpeg

    own = set(ffmpeg.live_pids())
    for helper, attribute in (
        (resource_tracker, "_resource_tracker"),
        (forkserver, "_forkserver"),
    ):
        instance = getattr(helper, attribute, None)
        for name in ("_pid", "_forkserver_pid"):
            pid = getattr(instance, name, None)
            if isinstance(pid, int):
                own.add(pid)
    return own


def _still_running(children: list[psutil.Process], own: set[int]) -> list[psutil.Process]:
    import psutil

    from ..media import ffmpeg

    running = []
    for proc in children:
        with contextlib.suppress(psutil.Error):
            if proc.pid in own or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if not ffmpeg.is_ours(proc.cmdline()):
                running.append(proc)
    return running


def _name(proc: psutil.Process) -> str:
    import psutil

    try:
        return f"{proc.name()}[{proc.pid}]"
    except psutil.Error:
        return f"pid {proc.pid}"


def _kill(children: list[psutil.Process]) -> None:
    """SIGTERM `children`, SIGKILL those still running `CHILD_GRACE` seconds later; reap them."""
    import psutil

    for proc in children:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(children, timeout=CHILD_GRACE)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=CHILD_GRACE)


def _whose(thread: threading.Thread, records: list[_Record]) -> _Record:
    """The record to name a thread by that several saw start: one whose stage's code it
    runs, then one of a `setup()`, then the first."""
    module = _code_module(thread)
    return min(records, key=lambda r: (module not in r.modules, not r.exact))


def settle() -> list[Leftover]:
    """Kill the children that watched stages left running, and return what each stage left:
    its threads still running (not vidpipe's), its children (killed now), and what this
    process's workers reported; one `Leftover` per stage, in the order first seen.

    Called once vidpipe's own threads and processes of the run have stopped; forgets what it
    returns. Something several watches saw start is named once (`_whose`).
    """
    with _lock:
        watched, adopted = list(_watched), list(_adopted)
        _watched.clear()
        _adopted.clear()
    if not watched:
        return _merged(adopted)
    own = _vidpipes_own()
    threads: dict[threading.Thread, list[_Record]] = {}
    children: dict[tuple[int, float], tuple[psutil.Process, list[_Record]]] = {}
    for record in watched:
        for thread in record.threads:
            if thread.is_alive() and not _vidpipes_thread(thread):
                threads.setdefault(thread, []).append(record)
        for proc in _still_running(record.children, own):
            children.setdefault(_key(proc), (proc, []))[1].append(record)
    named: dict[str, tuple[list[str], list[str]]] = {}
    for thread, records in threads.items():
        named.setdefault(_whose(thread, records).stage, ([], []))[0].append(thread.name)
    for proc, records in children.values():
        first = min(records, key=lambda r: not r.exact)
        named.setdefault(first.stage, ([], []))[1].append(_name(proc))
    _kill([proc for proc, _ in children.values()])
    _left.update(threads)
    return _merged([*adopted, *(Leftover(s, tuple(t), tuple(c)) for s, (t, c) in named.items())])


def _merged(found: list[Leftover]) -> list[Leftover]:
    """One `Leftover` per stage, in the order first seen."""
    merged: dict[str, Leftover] = {}
    for left in found:
        before = merged.get(left.stage, Leftover(left.stage))
        merged[left.stage] = Leftover(
            left.stage, before.threads + left.threads, before.children + left.children
        )
    return list(merged.values())


def threads_left() -> bool:
    """Whether a thread that `settle` found a stage left running still runs."""
    return any(t.is_alive() for t in list(_left))


def warn(found: Iterable[Leftover]) -> None:
    """Print the warning line of each `Leftover` on stderr, once per stage in this process: a
    stage that a command sets up again after its run (`predict` measures it) is named once,
    as is one that a long-lived program runs job after job."""
    for left in found:
        if left.stage not in _warned:
            _warned.add(left.stage)
            print(left.line(), file=sys.stderr)


def leave_stuck_threads(code: int) -> None:
    """End this process now with `code` if a thread it cannot stop is still running.

    A thread cannot be killed: one stuck in a stage (a `sleep` for ever, a hung library call)
    or left running by one would keep the interpreter from exiting, which joins every
    non-daemon thread at exit (the threads of a `ThreadPoolExecutor` among them). Called once
    a run has cleaned up after itself, so that nothing is left but such threads, which die
    with the process. The main process runs its exit handlers first (`atexit`); a worker
    process has none of its own to run.
    """
    main = threading.main_thread()
    if any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate()):
        # A forked worker inherited its parent's exit handlers: not its own to run.
        if multiprocessing.parent_process() is None:
            atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
