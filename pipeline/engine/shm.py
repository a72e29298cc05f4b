"""A ring of frame slots in one `multiprocessing.shared_memory` segment.

One process owns a ring: it creates the segment and is the only one that unlinks it (in `close`,
called from `finally`, so also on errors and interrupts). Other processes attach by name and only
close their mapping. Only slot numbers travel between processes; the frames stay put.

Segment names start with `vidpipe-<run id>-`, so the process that started a run can remove what a
killed owner could not (`sweep`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from multiprocessing import resource_tracker, shared_memory

import numpy as np

from ..errors import ConfigError
from ..stages.base import StreamSpec

__all__ = ["SHM_FOLDER", "SharedFrameRing", "ring_name", "sweep"]

#: Where Linux keeps POSIX shared memory (a tmpfs).
SHM_FOLDER = "/dev/shm"


def ring_name(run_id: str, task: str, side: str) -> str:
    """The segment name of `task`'s `side` ('in' or 'out') ring in run `run_id`."""
    return f"vidpipe-{run_id}-{task}-{side}"


class SharedFrameRing:
    """`slots` frames of `spec`, as numpy views into one shared-memory segment."""

    def __init__(
        self, shm: shared_memory.SharedMemory, spec: StreamSpec, slots: int, owner: bool
    ) -> None:
        self._shm = shm
        self.name = shm.name
        self.spec = spec
        self.slots = slots
        self.owner = owner
        buffer = shm.buf
        assert buffer is not None
        size = spec.frame_bytes
        self.frames: list[np.ndarray] = [
            np.ndarray(spec.shape, dtype=np.uint8, buffer=buffer, offset=i * size)
            for i in range(slots)
        ]

    @classmethod
    def create(cls, name: str, spec: StreamSpec, slots: int) -> SharedFrameRing:
        """Create (and own) a ring; a stale segment of the same name is replaced.

        The segment's pages are reserved at once, so that shared memory too small for it fails
        here, with `ConfigError` naming /dev/shm, its free space and the ring's size, rather than
        later with SIGBUS in whichever process first touches a page that does not fit.
        """
        sweep([name])
        size = spec.frame_bytes * slots
        if _free_bytes() < size:
            raise _no_room(size, None)
        try:
            shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        except OSError as exc:
            raise _no_room(size, exc) from exc
        try:
            if hasattr(os, "posix_fallocate"):  # Linux; macOS has no /dev/shm to fill
                os.posix_fallocate(shm._fd, 0, size)  # type: ignore[attr-defined]
        except OSError as exc:
            shm.close()
            shm.unlink()
            raise _no_room(size, exc) from exc
        return cls(shm, spec, slots, owner=True)

    @classmethod
    def attach(cls, name: str, spec: StreamSpec, slots: int) -> SharedFrameRing:
        """Attach to a ring another process owns."""
        shm = _open(name)
        return cls(shm, spec, slots, owner=False)

    def close(self) -> None:
        """Drop this process's mapping; the owner also unlinks the segment (once)."""
        self.frames.clear()
        # Views handed out (the frame being encoded) may still exist; the mapping then goes when
        # they do. The name is what must not outlive the run, and unlink removes it regardless.
        with contextlib.suppress(BufferError):
            self._shm.close()
        if self.owner:
            self.owner = False
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()


def _free_bytes() -> int:
    """Free bytes in /dev/shm (unlimited where there is none to ask)."""
    try:
        st = os.statvfs(SHM_FOLDER)
    except OSError:
        return sys.maxsize
    return st.f_bavail * st.f_frsize


def _no_room(size: int, exc: OSError | None) -> ConfigError:
    """The one-line error for shared memory that cannot hold a ring: the machine's limit."""
    why = f" ({exc.strerror or type(exc).__name__})" if exc is not None else ""
    return ConfigError(
        f"shared memory ({SHM_FOLDER}) cannot hold a frame ring{why}: {_free_bytes() >> 10} KiB "
        f"free, {-(-size >> 10)} KiB needed; free space there or use --transport pickle"
    )


def _open(name: str) -> shared_memory.SharedMemory:
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg,unused-ignore]
    # Before 3.13 attaching registers the segment with the resource tracker as if this process
    # owned it (gh-82300). Unregistering afterwards would also drop the owner's registration
    # when both share a tracker, so attaching must not register at all.
    register = resource_tracker.register
    resource_tracker.register = lambda name, rtype: None
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register


def sweep(names: list[str]) -> None:
    """Unlink the named segments if they exist (after an owner was killed)."""
    for name in names:
        try:
            shm = shared_memory.SharedMemory(name=name)
        except FileNotFoundError:
            continue
        shm.close()
        shm.unlink()
