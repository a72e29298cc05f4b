"""Predicting a layout's wall time from one serial run: the model (`vidpipe predict`).

Amdahl's law with the GIL as a serial resource inside each process, the ffmpeg processes as
work beside Python, and the fixed costs a layout adds. Every quantity is measured, by a serial
run and on this machine (`pipeline.lab.ingredients`); nothing is fitted to the layouts' runs.

For each task T, from the serial run (CPU seconds unless said):

    S   its stages' CPU time
    g   the serial share of its stages under threads: the larger of the share of their CPU
        time they hold the GIL (measured beside a thread of pure Python) and the serial
        fraction two threads show running them on a frame each (Karp-Flatt: e = 2/speedup - 1).
        The second is larger when the stages release the GIL often: each time, a stage waits
        for the thread that took it to be made to let go (up to a switch interval, 5 ms), a
        convoy that the share of time holding the GIL does not see. Above 1 when two threads
        are slower than one.
    G   = S x min(g, 1): the part of the stages no number of threads in one process overlaps
    O   the task thread's own work besides the stages (pipes, digests, saves; GIL-free)
    D   its decoder ffmpeg's CPU time, E its encoder's (for a task with no stage, its one ffmpeg)
    N   frames; B bytes a frame travels to a pool process and back; its keyframes

and of the machine: C cores, W workers (`--workers`, default C), s the seconds a worker
process takes to start and import what every worker imports, c the seconds a byte takes to
copy, and whether x264 runs on one thread (as `compare` pins it) or on every core.

A layout is a placement of the tasks (serial, threads or processes), and for each task who
runs its stages: inline in the task's thread, a pool of w threads, or a pool of w processes
(w = W, or 1 when a stage needs the frames in order); or segments. Its wall time is the largest
of its lower bounds (the bottleneck sets the pace; the rest hides behind it):

    P(T)      the task's Python, with k = min(w, C):
                inline      S + O
                threads     max(S (g + (1 - g) / k), O, (S + O) / k)   Amdahl's law,
                            its serial fraction g as two threads showed it
                processes   max(O + N B c, (S + N B c) / k)     copies both ways
    chain(T)  max(P(T), E if x264 has one thread else E / C, D / C): decoder, Python and
              encoder run side by side, frames flowing through all three
    start(T)  s for a task in a process of its own, 2 s when its stages run on a pool of
              processes (the pool starts once the task's process is up)

    serial      sum of chain(T)
    threads     max of chain(T); the GIL: sum of G over the tasks that share the process
    processes   max of start(T) + chain(T)
    segments    each task cut at its keyframes into K(T) <= W segments as `segments` cuts it
                (1 when its stages need their frames in order), a segment taking s + its
                share of chain(T); queued in turn (each task's first, then second, ...), W
                running at a time, each with its own decoder and encoder: W segments ask
                for W x (S + O + D + E) / chain(T) cores, slowed by as much as that passes C
                (their start-ups by W / C); when the last one ends
    every one   cores: all CPU time (S, O, D, E, the start-ups, the copies) / C

The limit named is the bound that won: "the GIL", "the encoder", "one thread" (Python inline),
"the stages" (a pool too small for them), "cores", or "start-up" when starting processes is
most of the wall time. A perfect layout is bounded only by cores and by what cannot be split:
for each task the better of its stages spread over every core between one decoder and one
encoder (a pool with no start-up or copies) and its chain cut into as many pieces as it has
keyframes (one, when its stages need their frames in order): the most any layout can gain.

Predicted speedups are ratios of predicted wall times, serial's on the same machine included,
so that what the model leaves out of every layout alike (the frame loop's own overhead, page
cache, clock frequency) cancels. Assumptions: a frame costs the same under every layout; work
spreads evenly over a pool's workers; the frame pipeline keeps its three ends busy at once; a
hyperthread counts as a core. Left out, so that predictions err on the fast side:

* bursts: the cores bound spreads all work over the whole run, but work comes in bursts (the
  compress task's ffmpeg in the first second, beside render's Python), and while more threads
  are runnable than there are cores, the OS's fair share slows the one that sets the pace;
* the cost of each GIL hand-off when cores are busy: the thread given the GIL must first get a
  core, and meanwhile no Python runs in that process (two threads measured alone, for g, have
  a core each);
* a thread that releases the GIL per frame (pipe reads) slowed by one holding it (the convoy,
  outside the stages); the memory bandwidth copies compete for; the start-up imports of W
  workers starting at once; the join of the segments (a stream copy); and the `ray` layout (a
  Ray instance's start-up is not modelled).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config.layout_file import FramePool, Placement
from ..plan.pieces import segment_starts

__all__ = [
    "LAYOUTS",
    "Frames",
    "Machine",
    "Prediction",
    "Shape",
    "TaskWork",
    "perfect",
    "predict",
    "shape_of",
]


@dataclass(frozen=True)
class TaskWork:
    """One task's work as a serial run measured it (see the module docstring for the letters)."""

    name: str
    stage_cpu: Mapping[str, float]  # S, by stage
    gil_share: float  # the share of S holding the GIL
    serial_share: float  # g
    own: float  # O
    decode: float  # D
    encode: float  # E
    frames: int  # N
    frame_bytes: int  # B
    frame_independent: bool = True
    keyframes: tuple[int, ...] = ()  # the frames segments can start at (besides 0)

    @property
    def stages(self) -> float:
        """S: every stage's CPU seconds."""
        return sum(self.stage_cpu.values())

    @property
    def gil(self) -> float:
        """G: the stages' CPU seconds that threads of one process cannot overlap."""
        return self.stages * min(self.serial_share, 1.0)


@dataclass(frozen=True)
class Machine:
    """The machine a layout runs on, and its fixed costs."""

    cores: int  # C
    startup: float  # s
    copy_per_byte: float  # c
    single_thread_encoder: bool = True  # x264 pinned to one thread, as compare pins it
    workers: int | None = None  # W (None: the cores)

    @property
    def pool(self) -> int:
        """W: the workers of a pool, and the segments run at once."""
        return self.workers or self.cores


@dataclass(frozen=True)
class Frames:
    """Who runs one task's stages: inline, or a pool of `workers` threads or processes."""

    pool: FramePool = FramePool.INLINE
    workers: int | None = None  # None: the machine's W


@dataclass(frozen=True)
class Shape:
    """A layout as the model sees it: where the tasks run and who runs each task's stages."""

    tasks: Placement
    frames: Mapping[str, Frames] = field(default_factory=dict)  # missing: inline
    segments: bool = False


#: The registered layouts the model predicts, as shapes (`ray` is not predicted).
LAYOUTS: dict[str, tuple[Placement, FramePool, bool]] = {
    "serial": (Placement.SERIAL, FramePool.INLINE, False),
    "threads": (Placement.THREADS, FramePool.INLINE, False),
    "processes": (Placement.PROCESSES, FramePool.INLINE, False),
    "hybrid": (Placement.PROCESSES, FramePool.THREADS, False),
    "pool": (Placement.PROCESSES, FramePool.PROCESSES, False),
    "segments": (Placement.PROCESSES, FramePool.INLINE, True),
}


def shape_of(layout: str, tasks: list[TaskWork]) -> Shape:
    """The shape of registered layout `layout` for `tasks`."""
    placement, pool, segments = LAYOUTS[layout]
    return Shape(placement, {t.name: Frames(pool) for t in tasks}, segments)


@dataclass(frozen=True)
class Prediction:
    """A layout's predicted wall time on a machine, what limits it, and why in one line."""

    seconds: float
    limit: str
    why: str


@dataclass(frozen=True)
class _Bound:
    seconds: float
    limit: str
    why: str


def _workers(task: TaskWork, frames: Frames, m: Machine) -> int:
    """k: the workers that can run the task's stages at once."""
    if not task.frame_independent:
        return 1
    return max(1, min(frames.workers or m.pool, m.cores))


def _copies(task: TaskWork, m: Machine) -> float:
    return task.frames * task.frame_bytes * m.copy_per_byte


def _python(task: TaskWork, frames: Frames, m: Machine) -> _Bound:
    """P(T): the task's Python time, and what sets it."""
    k = _workers(task, frames, m)
    if frames.pool is FramePool.THREADS:
        spread = (task.stages + task.own) / k
        g = task.serial_share
        amdahl = task.stages * (g + (1 - g) / k)
        if amdahl > spread and amdahl >= task.own:
            return _Bound(
                amdahl,
                "the GIL",
                f"{task.name}'s stages hold the GIL {task.gil_share:.0%} of their CPU time, and "
                f"2 threads run them {2 / (1 + g):.2f}x as fast as 1: {k} threads take turns",
            )
        return _Bound(max(spread, task.own), "the stages", f"{task.name}'s stages on {k} threads")
    if frames.pool is FramePool.PROCESSES:
        copies = _copies(task, m)
        seconds = max(task.own + copies, (task.stages + copies) / k)
        return _Bound(seconds, "the stages", f"{task.name}'s stages on {k} processes")
    return _Bound(
        task.stages + task.own,
        "one thread",
        f"{task.name}'s stages run {task.stages + task.own:.1f} s in one thread",
    )


def _chain(task: TaskWork, frames: Frames, m: Machine) -> _Bound:
    """chain(T): the slowest end of the task's frame pipeline."""
    python = _python(task, frames, m)
    encode = task.encode if m.single_thread_encoder else task.encode / m.cores
    decode = task.decode / m.cores
    if encode > python.seconds and encode >= decode:
        threads = "one thread" if m.single_thread_encoder else f"{m.cores} threads"
        return _Bound(
            encode, "the encoder", f"{task.name}'s encoder needs {encode:.1f} s on {threads}"
        )
    if decode > python.seconds:
        return _Bound(decode, "the decoder", f"{task.name}'s decoder needs {decode:.1f} s")
    return python


def _pieces(task: TaskWork, count: int) -> list[float]:
    """Each segment's share of the task's frames when it is cut into up to `count` segments
    at its keyframes, as `segments` cuts it; one piece when its stages need their frames in
    order."""
    if not task.frame_independent or count < 2:
        return [1.0]
    starts = segment_starts(task.keyframes, task.frames, count)
    ends = [*starts[1:], max(task.frames, 1)]
    return [(end - start) / max(task.frames, 1) for start, end in zip(starts, ends, strict=True)]


def _segments(task: TaskWork, m: Machine) -> int:
    return len(_pieces(task, m.pool))


def _makespan(tasks: list[TaskWork], chains: dict[str, _Bound], m: Machine) -> float:
    """When the last segment ends: the tasks' segments queued in turn (the first of each
    task, then the second, ...), each started, as `segments` does, when one of the W running
    ends. A segment needs more than its one thread: its decoder and encoder run beside it, so
    while W segments run, they ask for W x (CPU time / chain time) cores, and slow down as
    much as that passes C (while starting, each asks for one)."""
    pieces = {t.name: _pieces(t, m.pool) for t in tasks}
    demand = {
        t.name: (t.stages + t.own + t.decode + t.encode) / max(chains[t.name].seconds, 1e-9)
        for t in tasks
    }
    queue = [
        (t.name, pieces[t.name][n])
        for n in range(max(len(p) for p in pieces.values()))
        for t in tasks
        if n < len(pieces[t.name])
    ]
    running = min(m.pool, len(queue))
    starting = max(1.0, running / m.cores)  # a start-up asks for one core
    ends = [0.0] * running
    for name, share in queue:
        slowdown = max(1.0, running * demand[name] / m.cores)
        start = heapq.heappop(ends)
        heapq.heappush(ends, start + m.startup * starting + chains[name].seconds * share * slowdown)
    return max(ends)


def _start(task: TaskWork, frames: Frames, shape: Shape, m: Machine) -> float:
    if shape.tasks is not Placement.PROCESSES:
        return 0.0
    pooled = frames.pool is FramePool.PROCESSES and task.stage_cpu
    return 2 * m.startup if pooled else m.startup


def _cpu(tasks: list[TaskWork], shape: Shape, m: Machine) -> float:
    """Every CPU second the layout spends: the work, its processes' start-ups, its copies."""
    work = sum(t.stages + t.own + t.decode + t.encode for t in tasks)
    processes, copies = 0, 0.0
    for task in tasks:
        frames = shape.frames.get(task.name, Frames())
        if shape.segments:
            processes += _segments(task, m)
        elif shape.tasks is Placement.PROCESSES:
            processes += 1
        if frames.pool is FramePool.PROCESSES and task.stage_cpu:
            processes += _workers(task, frames, m)
            copies += _copies(task, m)
    return work + processes * m.startup + copies


def _bounds(tasks: list[TaskWork], shape: Shape, m: Machine) -> list[_Bound]:
    """The layout's lower bounds on its wall time."""
    frames = {t.name: shape.frames.get(t.name, Frames()) for t in tasks}
    chains = {t.name: _chain(t, frames[t.name], m) for t in tasks}
    cpu = _cpu(tasks, shape, m)
    bounds = [_Bound(cpu / m.cores, "cores", f"{m.cores} cores carry {cpu:.1f} CPU-s of work")]
    if shape.segments:
        slowest = max(chains.values(), key=lambda b: b.seconds)
        bounds.append(_Bound(_makespan(tasks, chains, m), slowest.limit, slowest.why))
    elif shape.tasks is Placement.SERIAL:
        slowest = max(chains.values(), key=lambda b: b.seconds)
        total = sum(b.seconds for b in chains.values())
        bounds.append(_Bound(total, slowest.limit, slowest.why))
    else:
        bounds += [
            _Bound(_start(t, frames[t.name], shape, m) + chains[t.name].seconds, b.limit, b.why)
            for t in tasks
            for b in [chains[t.name]]
        ]
        if shape.tasks is Placement.THREADS:
            gil = sum(t.gil for t in tasks)
            bounds.append(
                _Bound(gil, "the GIL", f"the tasks' stages share one GIL for {gil:.1f} s")
            )
    return bounds


def predict(tasks: list[TaskWork], shape: Shape, m: Machine) -> Prediction:
    """The wall time of a layout of shape `shape` on machine `m`, from a serial run's `tasks`."""
    bounds = _bounds(tasks, shape, m)
    top = max(bounds, key=lambda b: b.seconds)
    starts = max(
        (_start(t, shape.frames.get(t.name, Frames()), shape, m) for t in tasks), default=0.0
    )
    if shape.segments:
        starts = m.startup * sum(_segments(t, m) for t in tasks) / m.pool
    limit, why = top.limit, top.why
    if starts > top.seconds / 2:
        limit = "start-up"
        why = f"starting its processes takes {starts:.1f} s of {top.seconds:.1f} s"
    return Prediction(top.seconds, limit, why)


def perfect(tasks: list[TaskWork], m: Machine) -> Prediction:
    """A perfect layout's wall time: every CPU second spread over the cores with no start-up,
    copy or GIL, bounded only by what cannot be split. A task whose stages need their frames
    in order runs them in one thread; any other task takes the better of two cuts: its
    stages spread over every core between one decoder and one encoder (as a pool, for free),
    or its whole chain cut at every keyframe (the most segments it has)."""
    cpu = sum(t.stages + t.own + t.decode + t.encode for t in tasks)
    bounds = [_Bound(cpu / m.cores, "cores", f"{m.cores} cores carry {cpu:.1f} CPU-s of work")]
    free = dataclasses.replace(m, copy_per_byte=0.0, workers=m.cores)
    for task in tasks:
        chain = _chain(task, Frames(), m)
        pieces = _pieces(task, len(task.keyframes) + 1)
        cuts = [_Bound(chain.seconds * max(pieces), chain.limit, f"{chain.why}, in one piece")]
        if len(pieces) > 1:
            why = f"{chain.why}, cut at most into {len(pieces)} pieces at its keyframes"
            cuts[0] = _Bound(cuts[0].seconds, chain.limit, why)
        if task.frame_independent and task.stage_cpu:
            cuts.append(_chain(task, Frames(FramePool.PROCESSES), free))
        bounds.append(min(cuts, key=lambda b: b.seconds))
    top = max(bounds, key=lambda b: b.seconds)
    return Prediction(top.seconds, top.limit, top.why)
