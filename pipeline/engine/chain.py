"""A task's stages set up together and applied in order."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator

import numpy as np

from ..errors import StageError, reraise_interrupt
from ..instrument import cpuclock, trace
from ..instrument.cpuclock import CpuLedger
from ..instrument.faults import fault_at
from ..stages.base import Stage, StreamSpec
from ..stages.color import ToBGR, ToI420
from .leftovers import StageWatch

__all__ = ["STAGE_FAILURES", "StageChain", "copy_stages", "mismatch"]


#: What a stage may raise that fails the stage: anything but an interruption, `SystemExit`
#: and `GeneratorExit` included (a stage that calls `sys.exit()` fails like any other).
STAGE_FAILURES = BaseException


def mismatch(frame: object, spec: StreamSpec) -> str | None:
    """What is wrong with `frame` as a frame of `spec`, or None when nothing is.

    A frame is a C-contiguous `numpy.uint8` array of `spec.shape` (the stage protocol); a few
    attribute reads, cheap enough for every frame of every stage.
    """
    expected = f"a C-contiguous uint8 array of shape {spec.shape} ({spec.pix_fmt.value} "
    expected += f"{spec.width}x{spec.height})"
    if not isinstance(frame, np.ndarray):
        return f"returned {type(frame).__name__}, not a frame; expected {expected}"
    if frame.dtype != np.uint8 or frame.shape != spec.shape:
        got = f"a {frame.dtype} array of shape {frame.shape}"
        return f"returned {got}; expected {expected}"
    if not frame.flags.c_contiguous:
        return (
            "returned a view that is not C-contiguous (a slice, a flip or a transpose); return "
            f"np.ascontiguousarray(frame): expected {expected}"
        )
    return None


def copy_stages(task: str, stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
    """Copies of stages not set up yet, for another thread to set up and run (`deepcopy`:
    before `setup()` a stage holds only its configuration, which copies).

    A stage that cannot be copied fails with a `StageError` naming it.
    """
    copies = []
    for stage in stages:
        try:
            copies.append(copy.deepcopy(stage))
        except STAGE_FAILURES as exc:
            reraise_interrupt(exc)
            raise StageError(
                task=task,
                stage=stage.name,
                index=-1,
                error=f"cannot be copied for each thread of a frame pool ({exc!r}): keep "
                "only configuration in it until setup()",
            ) from exc
    return tuple(copies)


#: Seconds a stage's teardown gets while the run is being interrupted.
TEARDOWN_GRACE = 1.0


def _within(seconds: float, call: Callable[[], object]) -> None:
    """Run `call` in a daemon thread for at most `seconds`; raise what it raised. One still
    running by then is left behind."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the caller below
            raised.append(exc)

    thread = threading.Thread(target=run, name="teardown", daemon=True)
    thread.start()
    thread.join(seconds)
    if raised:
        raise raised[0]


class StageChain:
    """A task's stages, set up for frames of `spec` and applied in order.

    Errors raised by a stage become `StageError`s naming the task, the stage and the frame, and
    so does a frame a stage returns that is not a frame of the spec it declared
    (`Stage.output_spec`): not an array, another shape or dtype, not C-contiguous.
    """

    def __init__(
        self,
        task: str,
        stages: tuple[Stage, ...],
        spec: StreamSpec,
        cpu: CpuLedger | None = None,
    ) -> None:
        self.task = task
        self.stages = stages
        self.spec = spec
        self._specs: list[StreamSpec] = []  # what each stage returns
        for stage in stages:
            spec = stage.output_spec(spec)
            self._specs.append(spec)
        self._ready: list[Stage] = []
        # An injected stage fault (tests) strikes after the task's own last stage, not after
        # the colour conversion that the planner may have put behind it.
        own = [stage for stage in stages if not isinstance(stage, ToBGR | ToI420)]
        self._fault_stage: Stage | None = (own or list(stages))[-1] if stages else None
        #: The stages to name for what the chain left running (`pipeline.engine.leftovers`).
        self._own = own or list(stages)
        self._watch: StageWatch | None = None
        #: Each stage's time on frames, by stage name: wall, on a CPU, waiting for a core;
        #: `cpu` when given, a ledger that several chains share (it has a lock).
        self.cpu = cpu or CpuLedger()

    def __enter__(self) -> StageChain:
        # What a stage starts and leaves running after teardown() is found and named.
        watch = self._watch = StageWatch() if self.stages else None
        try:
            self._set_up(watch)
        except BaseException:
            if watch is not None:  # no __exit__ may follow a failed __enter__
                watch.end(self._own)
            raise
        return self

    def _set_up(self, watch: StageWatch | None) -> None:
        spec = self.spec
        for stage in self.stages:
            try:
                stage.setup(spec)
            except STAGE_FAILURES as exc:
                if watch is not None:
                    watch.set_up(stage)
                reraise_interrupt(exc)
                raise StageError(
                    task=self.task, stage=stage.name, index=-1, error=f"setup() raised {exc!r}"
                ) from exc
            if watch is not None:
                watch.set_up(stage)
            self._ready.append(stage)
            spec = stage.output_spec(spec)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Tear every stage down, also after errors; the first teardown error is raised as a
        `StageError` unless the chain is already failing with another.

        When the run is being interrupted, each teardown gets `TEARDOWN_GRACE` seconds: one that
        does not return in time is left running (in a daemon thread, which the process exits
        without) rather than holding the interruption for ever.
        """
        try:
            failed = self._teardown(interrupted=isinstance(exc, KeyboardInterrupt))
        finally:
            if self._watch is not None:
                self._watch.end(self._own)
        if failed is not None and exc is None:
            raise failed

    def _teardown(self, *, interrupted: bool) -> StageError | None:
        """Tear down every stage set up, last first; the first teardown error, or None."""
        failed: StageError | None = None
        for stage in reversed(self._ready):
            try:
                if interrupted:
                    _within(TEARDOWN_GRACE, stage.teardown)
                else:
                    stage.teardown()
            except STAGE_FAILURES as err:
                reraise_interrupt(err)
                if failed is None:
                    failed = StageError(
                        task=self.task,
                        stage=stage.name,
                        index=-1,
                        error=f"teardown() raised {err!r}",
                    )
                    failed.__cause__ = err
        self._ready.clear()
        return failed

    @property
    def seconds(self) -> dict[str, float]:
        """Wall time in each stage, summed over frames (and threads)."""
        return {name: spent.wall / 1e9 for name, spent in self.cpu.snapshot().items()}

    def apply(self, frame: np.ndarray, index: int) -> np.ndarray:
        for stage, spec in zip(self.stages, self._specs, strict=True):
            begin = cpuclock.read()
            try:
                frame = stage.process(frame, index)
                if stage is self._fault_stage:
                    fault_at("stage", self.task, index)
            except STAGE_FAILURES as exc:
                reraise_interrupt(exc)
                raise StageError(
                    task=self.task,
                    stage=stage.name,
                    index=index,
                    error=f"{type(exc).__name__}: {exc}",
                ) from exc
            wrong = mismatch(frame, spec)
            if wrong is not None:
                raise StageError(task=self.task, stage=stage.name, index=index, error=wrong)
            end = cpuclock.read()
            spent = self.cpu.add(stage.name, begin, end)
            trace.span(
                stage.name,
                "stage",
                begin.wall,
                end.wall,
                frame=index,
                on_cpu_ns=spent.on_cpu,
                waiting_ns=spent.waiting,
                blocked_ns=spent.blocked,
            )
        return frame

    def map(self, frames: Iterator[np.ndarray], start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """Processed frames with their indices (the first is `start`), in order."""
        for index, frame in enumerate(frames, start):
            yield index, self.apply(frame, index)
