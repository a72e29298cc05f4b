"""The command line's reporter: one tqdm bar per task (frames, fps, ETA) on stderr."""

from __future__ import annotations

import sys
import threading

from tqdm import tqdm

from ..report.results import TaskResult

__all__ = ["TqdmReporter"]


class TqdmReporter:
    """Draws one bar per task, in the order the tasks were planned; safe from any thread."""

    def __init__(self, tasks: list[str]) -> None:
        self._positions = {name: i for i, name in enumerate(tasks)}
        self._bars: dict[str, tqdm] = {}
        self._lock = threading.Lock()

    def task_started(self, task: str, total_frames: int) -> None:
        with self._lock:
            self._bars[task] = tqdm(
                total=total_frames or None,
                desc=f"{task:<10}",
                unit="frame",
                position=self._positions.get(task, len(self._positions)),
                dynamic_ncols=True,
                file=sys.stderr,
                leave=True,
            )

    def frames_done(self, task: str, frames: int) -> None:
        with self._lock:
            bar = self._bars.get(task)
            if bar is not None:
                if bar.total is not None and frames > bar.total:
                    bar.total = frames  # the container's count was low: headers lie
                bar.update(frames - bar.n)

    def task_finished(self, task: str, result: TaskResult) -> None:
        with self._lock:
            bar = self._bars.get(task)
            if bar is not None:
                bar.total = result.frames
                bar.update(result.frames - bar.n)
                self._freeze(bar)

    @staticmethod
    def _freeze(bar: tqdm) -> None:
        # Draw the final state once and stop: the bar keeps the time and rate of its own task.
        # (Closing positioned bars one by one moves the cursor under the others' lines.)
        bar.refresh()
        bar.disable = True

    def close(self) -> None:
        """Freeze every bar and move the cursor below them all."""
        with self._lock:
            for bar in self._bars.values():
                if not bar.disable:
                    self._freeze(bar)
            if self._bars:
                sys.stderr.write("\n" * len(self._positions))
                sys.stderr.flush()
            self._bars.clear()


# tqdm's monitor thread would outlive runs; our bars are refreshed by every update anyway.
tqdm.monitor_interval = 0
