"""Joining a Ray cluster, or starting a private local instance for one run, and the signals
that stop it in order."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ...engine.supervisor import die_with_parent
from ...errors import ConfigError, Interrupted, PipelineError
from .remote import sweep_workdirs

__all__ = [
    "OBJECT_STORE_BYTES",
    "SESSION_PREFIX",
    "SHORT_TEMP",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "Signals",
    "connected",
    "session_root",
]

#: The local instance's object store: enough for the cuts and pieces in flight; Ray spills to
#: disk beyond it.
OBJECT_STORE_BYTES = 512 << 20
#: Seconds to wait for a local instance to start, and to stop.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0
#: The local instance's folder, in the temporary directory (or /tmp, see `session_root`).
SESSION_PREFIX = "vidpipe-ray-"
#: An AF_UNIX socket's path has at most 107 bytes (Linux; 103 on macOS).
_SOCKET_PATH_MAX = 103 if sys.platform == "darwin" else 107
#: The longest path Ray makes below its folder, a socket: `/session_<date>_<time>_<microseconds>
#: _<pid>/sockets/plasma_store`, with a pid of up to 7 digits.
_RAY_SOCKET_TAIL = len("/session_2026-12-02_11-01-34_421098_1234567/sockets/plasma_store")
#: Ray's folder inside ours: `<base>/vidpipe-ray-XXXXXXXX/r`.
_RAY_FOLDER = "r"
#: Where the folder goes when the temporary directory's path is too long.
SHORT_TEMP = "/tmp"


def session_root() -> Path:
    """Make a new folder of ours (0700) for the local instance: Ray's folder goes inside it.

    Ray makes its folder and those below it writable by everyone (0777, no sticky bit); inside
    ours no other user can reach them. It is made in the temporary directory, or in /tmp when
    the temporary directory's path is too long for the sockets Ray makes below it. `ConfigError`
    when neither will do: the message names TMPDIR and what to do.
    """
    overhead = len(SESSION_PREFIX) + len("XXXXXXXX") + 2 + len(_RAY_FOLDER) + _RAY_SOCKET_TAIL
    temp = tempfile.gettempdir()
    for base in dict.fromkeys((temp, SHORT_TEMP)):
        if len(os.fsencode(base)) + overhead <= _SOCKET_PATH_MAX:
            with contextlib.suppress(OSError):
                return Path(tempfile.mkdtemp(prefix=SESSION_PREFIX, dir=base))
    longest = _SOCKET_PATH_MAX - overhead
    raise ConfigError(
        f"the temporary directory {temp} (TMPDIR) is too long for Ray's sockets and "
        f"{SHORT_TEMP} is not usable: set TMPDIR to a writable folder of at most "
        f"{longest} characters"
    )


class Signals:
    """SIGINT and SIGTERM as a flag while Ray runs, turned into `Interrupted` by the caller.

    A Python signal handler that raises inside Ray's native calls (`ray.wait`) loses which
    signal it was; the wait loop checks the flag between calls instead.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __enter__(self) -> Signals:
        self._previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for sig in self._previous:
            signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _note(self, signum: int, frame: object) -> None:
        self.signum = self.signum or signum

    def check(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once when nothing listens at `address`: ray.init would retry it for ever."""
    host, _, port = address.removeprefix("ray://").rpartition(":")  # checked by RunOptions
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PipelineError(f"cannot reach the Ray cluster at {address} ({reason})") from exc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _local_instance(cpus: int) -> Iterator[str]:
    """Start a private, quiet Ray head node on loopback; yield its address; stop it after.

    Started with `ray start --block` in a session of its own, not with `ray.init()`: a
    terminal's Ctrl-C or a SIGTERM to our process group then reaches only this process, which
    stops Ray in order, and the node dies with us if we are killed (PR_SET_PDEATHSIG). It
    authenticates with the driver's token, and keeps its files in a folder removed after,
    whatever happens from the moment it is made.
    """
    root = session_root()
    try:
        with _head_node(root, cpus) as address:
            yield address
    finally:
        shutil.rmtree(root, ignore_errors=True)
        sweep_workdirs()  # the node's workers are gone now


@contextlib.contextmanager
def _head_node(root: Path, cpus: int) -> Iterator[str]:
    """`ray start --block` with its files in `root`; yield its address; stop it after."""
    temp = root / _RAY_FOLDER
    port = _free_port()
    env = dict(os.environ)  # with the token `_authenticate` chose
    args = ["start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1"]
    args += ["--num-cpus", str(cpus), "--object-store-memory", str(OBJECT_STORE_BYTES)]
    args += ["--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(temp)]
    log = root / "ray-start.log"
    with log.open("wb") as out:
        head = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # prctl only: safe between fork and exec
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(port):
            if head.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise PipelineError(f"could not start a local Ray instance ({tail[0]})")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()  # `ray start --block` stops the node's processes on SIGTERM
        try:
            head.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # whatever of the node is left


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@contextlib.contextmanager
def connected(address: str | None, cpus: int) -> Iterator[None]:
    """Connect to the cluster at `address`, or to a local instance started for this run."""
    import ray

    with contextlib.ExitStack() as stack:
        if address is None:
            address = stack.enter_context(_local_instance(cpus))
        else:
            _check_reachable(address)
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            ray.init(
                address=address,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise PipelineError(f"cannot join the Ray cluster at {address}: {exc}") from exc
        finally:
            for sig, handler in handlers.items():  # ray.init replaces SIGTERM's handler
                signal.signal(sig, handler)
        try:
            yield
        except BaseException:
            # Failed or interrupted: leaving ends the job with its segments still running, and
            # Ray's core worker logs, straight to file descriptor 2, that it could not report
            # their ends to a driver that is going ("Failed to push error to driver"). Our own
            # one-line error follows; those lines would only bury it.
            with _native_stderr_silenced():
                ray.shutdown()
            raise
        ray.shutdown()


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 points at /dev/null inside the block (native code writes there
    directly, past `sys.stderr`); restored afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
