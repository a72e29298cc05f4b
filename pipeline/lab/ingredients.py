"""What the model (`pipeline.lab.model`) predicts from: one serial run, and this machine.

From the serial run's report: each stage's CPU seconds and the task thread's own (its pipes,
digests, saves: `cpu_breakdown`), each ffmpeg's CPU seconds (`processes`), the frames. From the
planned job: each stage's frame format, whether the stages need their frames in order, the
keyframes segments can start at, the layout's shape. Measured here: each stage's serial share
under threads (`gilmeter`, OpenCV pinned to one thread as compare pins it), how long a worker
process takes to start under the start method, and what copying a byte costs.
"""

from __future__ import annotations

import multiprocessing
import pickle
import statistics
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..config.layout_file import is_layout_file, read_layout_file
from ..config.settings import usable_cores
from ..engine.chain import StageChain
from ..plan.planner import RunPlan
from ..plan.tasks import Task
from ..report.results import CPU_PHASES, TaskResult
from ..stages.base import Stage, StreamSpec
from . import gilmeter
from .model import LAYOUTS, Frames, Machine, Shape, TaskWork, shape_of

__all__ = ["copy_cost", "machine", "serial_share", "shape_for", "task_work", "worker_startup"]

#: Frames each stage's serial share is measured on, and rounds of the two-thread timing.
SHARE_FRAMES = 6
SHARE_ROUNDS = 3
#: The largest serial share kept: two threads a third as fast as one (a convoy that bad is
#: past what one timing extrapolates well).
MAX_SERIAL_SHARE = 5.0


def _like_a_worker() -> None:
    """What a worker imports before its first frame."""
    import cv2  # noqa: F401

    import pipeline.engine.runner  # noqa: F401


def worker_startup(method: str, rounds: int = 3) -> float:
    """Median seconds to start a worker process under start method `method`, have it import
    what every pipeline worker imports, and join it."""
    context = multiprocessing.get_context(method)
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        process = context.Process(target=_like_a_worker)  # type: ignore[attr-defined]
        process.start()
        process.join()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def copy_cost(frame_bytes: int, rounds: int = 20) -> float:
    """Seconds a byte takes to copy between two buffers of `frame_bytes` (a frame's size)."""
    source = np.ones(max(frame_bytes, 1), np.uint8)
    target = np.empty_like(source)
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        np.copyto(target, source)
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) / source.size


class _Chain:
    """A task's stages as one stage, applied as a thread of a pool applies them
    (`StageChain.apply`): what `gilmeter` times."""

    name = "chain"
    frame_independent = True

    def __init__(self, task: str, stages: tuple[Stage, ...]) -> None:
        self._task, self._stages = task, stages

    def setup(self, spec: StreamSpec) -> None:
        self._chain = StageChain(self._task, self._stages, spec).__enter__()

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        return self._chain.apply(frame, index)

    def teardown(self) -> None:
        self._chain.__exit__(None, None, None)


def serial_share(task: Task, plan: RunPlan) -> tuple[float, float]:
    """(the share of `task`'s stage CPU time holding the GIL, g: the serial share threads
    see), measured on generated frames of its size; see the model's docstring."""
    import cv2

    from .stagecheck import generated_frames

    spec = task.input_spec(plan.media)
    frames = generated_frames(spec.width, spec.height, SHARE_FRAMES, spec.pix_fmt)
    blueprint = pickle.dumps(task.stages)  # fresh instances per thread, as a worker gets them
    chain = _Chain(task.name, pickle.loads(blueprint))
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        chain.setup(spec)
        try:
            held = gilmeter.gil_share(chain, spec, frames)  # type: ignore[arg-type]
        finally:
            chain.teardown()
        if usable_cores() < 2:  # two threads take turns on one core whatever the GIL does
            return held, held
        two = gilmeter.speedup(
            lambda: _Chain(task.name, pickle.loads(blueprint)),  # type: ignore[arg-type,return-value]
            spec,
            frames,
            SHARE_ROUNDS,
        ).stage
    finally:
        cv2.setNumThreads(threads)
    karp_flatt = 2 / max(two, 1e-9) - 1  # above 1 when two threads are slower than one
    return held, round(min(MAX_SERIAL_SHARE, max(held, karp_flatt)), 2)


def _ffmpeg_cpu(processes: Iterable[dict[str, Any]], role: str, task: str) -> float:
    return float(sum(p["cpu_seconds"] for p in processes if p["role"] == f"ffmpeg-{role}:{task}"))


def task_work(plan: RunPlan, report: dict[str, Any], *, measure: bool = True) -> list[TaskWork]:
    """Each task of `plan`'s work, as its serial run (`report`, a report.json) measured it.

    Without `measure`, every stage counts as holding the GIL (for bounds that do not depend on
    it, and for tests)."""
    tasks = []
    keyframes = tuple(k for k, _ in plan.media.keyframes if k > 0)
    processes = report["processes"]
    for task in plan.tasks:
        result = TaskResult.from_dict(task.name, report["tasks"][task.name])
        breakdown = result.cpu_breakdown
        spec_in, spec_out = task.input_spec(plan.media), task.output_spec(plan.media)
        held, share = serial_share(task, plan) if measure and task.stages else (1.0, 1.0)
        tasks.append(
            TaskWork(
                name=task.name,
                stage_cpu={k: v.on_cpu for k, v in breakdown.items() if k not in CPU_PHASES},
                gil_share=held,
                serial_share=share,
                own=sum(v.on_cpu for k, v in breakdown.items() if k in CPU_PHASES),
                decode=_ffmpeg_cpu(processes, "decode", task.name),
                encode=sum(
                    _ffmpeg_cpu(processes, role, task.name)
                    for role in ("transcode", "encode", "join")
                ),
                frames=result.frames,
                frame_bytes=spec_in.frame_bytes + spec_out.frame_bytes,
                frame_independent=task.frame_independent,
                keyframes=keyframes,
            )
        )
    return tasks


def machine(plan: RunPlan, tasks: list[TaskWork], *, measure: bool = True) -> Machine:
    """This machine as the model sees it, for `plan`'s options: its usable cores, its start
    method's start-up and its copy cost (free without `measure`), its workers and x264
    threads."""
    options = plan.options
    frame_bytes = max((t.frame_bytes for t in tasks), default=1)
    return Machine(
        cores=usable_cores(),
        startup=worker_startup(options.start_method.value) if measure else 0.0,
        copy_per_byte=copy_cost(frame_bytes) if measure else 0.0,
        single_thread_encoder=options.encoder.threads == 1,
        workers=options.workers,
    )


def shape_for(layout: str, tasks: list[TaskWork]) -> Shape | None:
    """The shape of `layout`, a registered layout's name or a layout file's path; None for a
    layout the model does not predict (`ray`)."""
    if layout in LAYOUTS:
        return shape_of(layout, tasks)
    if not is_layout_file(layout):
        return None
    spec = read_layout_file(layout)
    frames = {}
    for task in tasks:
        plan = spec.frames_for(task.name)
        frames[task.name] = Frames(plan.pool, plan.workers)
    return Shape(spec.tasks, frames)
