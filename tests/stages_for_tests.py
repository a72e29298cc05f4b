"""Stages that misbehave on purpose; importable by worker processes under every start method."""

from __future__ import annotations

import os
import signal

import numpy as np

from pipeline.stages import PixelFormat, Stage


class FailAt(Stage):
    """Raises ValueError on frame `at`."""

    name = "fail-at"

    def __init__(self, at: int) -> None:
        self.at = at

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        if index == self.at:
            raise ValueError(f"bad frame {index}")
        return frame


class FailFrom(Stage):
    """Raises ValueError on every frame from `at`, after sleeping `delay` seconds on frame `at`:
    under a pool, a later frame fails first."""

    name = "fail-from"

    def __init__(self, at: int, delay: float = 0.0) -> None:
        self.at = at
        self.delay = delay

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        if index == self.at:
            import time

            time.sleep(self.delay)
        if index >= self.at:
            raise ValueError(f"bad frame {index}")
        return frame


class DieAt(Stage):
    """Kills its own process with SIGKILL on frame `at` (a worker dying mid-run)."""

    name = "die-at"

    def __init__(self, at: int) -> None:
        self.at = at

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        if index == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
        return frame


class Invert(Stage):
    """Inverts BGR frames (an ordinary user stage)."""

    name = "invert"

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        return np.bitwise_not(frame)


class BurnCpu(Stage):
    """Spends `seconds` of CPU time in pure Python on every frame (holds the GIL)."""

    name = "burn-cpu"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        import time

        end = time.thread_time() + self.seconds
        while time.thread_time() < end:
            pass
        return frame


class Trail(Stage):
    """Blends each frame with the previous output: state carried from frame to frame."""

    name = "trail"
    frame_independent = False

    def setup(self, spec: object) -> None:
        self._previous: np.ndarray | None = None

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        if self._previous is not None:
            frame = (frame // 2 + self._previous // 2).astype(np.uint8)
        self._previous = frame.copy()
        return frame


class Racy(Stage):
    """Claims frame independence but keeps the frame in `self` while working on it."""

    name = "racy"

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        import time

        self._current = frame.copy()
        time.sleep(0.001)  # another thread's frame lands in self._current meanwhile
        return np.asarray(self._current // 2 + index % 7, dtype=np.uint8)


_LAST_FRAME: list[np.ndarray] = []  # module-level: shared by every instance, in every thread


class SharedRacy(Stage):
    """Claims frame independence but keeps the frame in module-level state while working."""

    name = "shared-racy"

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        import time

        _LAST_FRAME[:] = [frame.copy()]
        time.sleep(0.001)  # another thread's frame lands in _LAST_FRAME meanwhile
        return np.asarray(_LAST_FRAME[0] // 2 + index % 7, dtype=np.uint8)


class Counter(Stage):
    """Claims frame independence but stamps how many frames it has seen (order-dependent)."""

    name = "counter"

    def setup(self, spec: object) -> None:
        self._seen = 0

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        self._seen += 1
        frame[0, 0] = self._seen % 256
        return frame


class Noisy(Stage):
    """Adds unseeded noise: different frames on every run."""

    name = "noisy"

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        noise = np.random.default_rng().integers(0, 8, frame.shape, dtype=np.uint8)
        return np.asarray(frame | noise, dtype=np.uint8)


class Unpicklable(Stage):
    """Holds a lock from the start, breaking the rule that only configuration exists before
    setup()."""

    name = "unpicklable"

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        with self.lock:
            return frame


class FailTeardown(Stage):
    """Passes frames through; its teardown raises (a background thread that failed, say)."""

    name = "fail-teardown"

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        return frame

    def teardown(self) -> None:
        raise OSError("could not flush")


class Unchanged(Stage):
    """Returns each frame as it came, in I420 or BGR: a stage that costs nothing but the trip
    through Python."""

    name = "unchanged"
    accepts = frozenset({PixelFormat.YUV420P, PixelFormat.BGR24})

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        return frame


class Returns(Stage):
    """Returns something that is not a frame of the spec it declares, from frame `at` on."""

    name = "returns"

    def __init__(self, kind: str, at: int = 3) -> None:
        self.kind = kind
        self.at = at

    def process(self, frame: np.ndarray, index: int) -> object:  # type: ignore[override]
        if index < self.at:
            return frame
        wrong: dict[str, object] = {
            "half": lambda: np.ascontiguousarray(frame[: frame.shape[0] // 2]),
            "transposed": lambda: np.ascontiguousarray(frame.transpose(1, 0, 2)),
            "float32": lambda: frame.astype(np.float32),
            "none": lambda: None,
            "two-d": lambda: np.ascontiguousarray(frame[..., 0]),
            "tiny": lambda: np.zeros((10, 10, 3), np.uint8),
            "view": lambda: frame[:, ::-1],
        }
        return wrong[self.kind]()  # type: ignore[operator]


class WrongOnI420(Stage):
    """Accepts BGR and I420 frames, and returns float64 frames for I420 ones."""

    name = "wrong-on-i420"
    accepts = frozenset({PixelFormat.BGR24, PixelFormat.YUV420P})

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        return frame.astype(np.float64) if frame.ndim == 2 else frame


class Exits(Stage):
    """Calls `sys.exit(code)` in `where`: "process" (on frame `at`), "setup" or "teardown"."""

    name = "exits"

    def __init__(self, where: str = "process", code: int = 3, at: int = 2) -> None:
        self.where = where
        self.code = code
        self.at = at

    def setup(self, spec: object) -> None:
        if self.where == "setup":
            raise SystemExit(self.code)

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        if self.where == "process" and index == self.at:
            raise SystemExit(self.code)
        return frame

    def teardown(self) -> None:
        if self.where == "teardown":
            raise SystemExit(self.code)


class Hangs(Stage):
    """Never returns from frame `at` (a stage stuck in a call that does not come back)."""

    name = "hangs"

    def __init__(self, at: int = 3) -> None:
        self.at = at

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        import time

        if index >= self.at:
            while True:
                time.sleep(3600)
        return frame


class Abort(BaseException):
    """Not an `Exception`: what a careless stage might raise."""


class RaisesBase(Stage):
    """Raises `Abort` (a BaseException) on frame `at`, or GeneratorExit in teardown."""

    name = "raises-base"

    def __init__(self, at: int = 3, where: str = "process") -> None:
        self.at = at
        self.where = where

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        if self.where == "process" and index == self.at:
            raise Abort(f"aborted at {index}")
        return frame

    def teardown(self) -> None:
        if self.where == "teardown":
            raise GeneratorExit("from teardown")


class NoSpec(Stage):
    """Its output_spec returns None (forgot the return)."""

    name = "no-spec"

    def output_spec(self, spec):  # type: ignore[no-untyped-def]
        spec.width  # noqa: B018 - computes something, returns nothing

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        return frame


class SlowHangingTeardown(Stage):
    """Slow frames, and a teardown that never returns."""

    name = "hanging-teardown"

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        import time

        time.sleep(0.1)
        return frame

    def teardown(self) -> None:
        import time

        while True:
            time.sleep(3600)


class PlainInvert:
    """Inverts BGR frames: a plain class, no base class, a `setup` that takes nothing."""

    def __init__(self, mask: int = 255) -> None:
        self.mask = mask

    def setup(self) -> None:
        self._mask = np.uint8(self.mask)

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        return np.bitwise_xor(frame, self._mask)


def plain_invert(frame: np.ndarray, index: int, mask: int = 255) -> np.ndarray:
    """Inverts BGR frames: a plain function."""
    return np.bitwise_xor(frame, np.uint8(mask))


class WaitsFor(Stage):
    """At frame `at`, waits until the file `path` exists, touching `path`.waiting first: a test
    holds a run at a known point, then lets it go (no race on how long the run takes)."""

    name = "waits-for"

    def __init__(self, path: str, at: int = 3) -> None:
        self.path = path
        self.at = at

    def process(self, frame: np.ndarray, index: int) -> np.ndarray:
        import time

        if index == self.at:
            open(f"{self.path}.waiting", "w").close()
            while not os.path.exists(self.path):
                time.sleep(0.01)
        return frame
