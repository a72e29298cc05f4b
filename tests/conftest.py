"""Shared fixtures: synthetic clips, the shipped sample, a CLI runner, and leak checks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_media" / "car-detection.mp4"
sys.path.insert(0, str(ROOT / "scripts"))

from make_sample import make_sample  # noqa: E402

# Processes the standard library keeps for the life of the interpreter, not of a run.
_INTERPRETER_HELPERS = ("resource_tracker", "forkserver")

MakeClip = Callable[..., Path]

# Started in the background by a non-interactive shell (`make test &`, nohup), the suite
# inherits SIGINT ignored, and so would every run it starts: the tests that interrupt a run
# with Ctrl-C's signal could not. A handler (unlike "ignore") is reset to the default in each
# child that is started.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def make_clip(tmp_path_factory: pytest.TempPathFactory) -> MakeClip:
    """Factory for synthetic clips, cached per set of arguments for the whole session."""
    cache: dict[tuple[object, ...], Path] = {}
    folder = tmp_path_factory.mktemp("clips")

    def make(name: str = "clip.mp4", **kwargs: object) -> Path:
        key = (name, *sorted(kwargs.items()))
        if key not in cache:
            out = folder / f"{len(cache)}-{name}"
            cache[key] = make_sample(out, **kwargs)  # type: ignore[arg-type]
        return cache[key]

    return make


#: 160x120, 12 frames at 25 fps with audio; a keyframe every 4 frames and B-frames, so that
#: segments have somewhere to cut and frames are reordered between decoding and display.
TINY = {"size": "160x120", "frames": 12, "audio": True, "gop": 4, "bframes": 2}


@pytest.fixture
def tiny_clip(make_clip: MakeClip) -> Path:
    """The TINY clip."""
    return make_clip("tiny.mp4", **TINY)


def _children() -> list[psutil.Process]:
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if not any(helper in cmdline for helper in _INTERPRETER_HELPERS):
            out.append(child)
    return out


def wait_for_no_children(timeout: float = 5.0) -> list[psutil.Process]:
    """Children of the test process still alive after `timeout` seconds (should be none)."""
    deadline = time.monotonic() + timeout
    while (left := _children()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def shm_segments() -> set[str]:
    """Our shared-memory segments currently in /dev/shm."""
    shm = Path("/dev/shm")
    return {p.name for p in shm.glob("vidpipe-*")} if shm.is_dir() else set()


def temp_entries() -> set[str]:
    """Our folders in the system's temporary directory, and Ray's default one."""
    temp = Path(tempfile.gettempdir())
    return {p.name for p in temp.glob("vidpipe-*")} | {p.name for p in temp.glob("ray")}


@pytest.fixture(autouse=True)
def nothing_outlives_the_test() -> Iterator[None]:
    """Every test: no process it started, no shared-memory segment and no temporary folder
    may outlive it."""
    before = shm_segments()
    temp_before = temp_entries()
    yield
    left = wait_for_no_children()
    assert not left, f"processes outlived the test: {[p.cmdline() for p in left]}"
    # /dev/shm is machine-wide: a run elsewhere on the machine may hold a segment for a while.
    deadline = time.monotonic() + 5
    while (leaked := shm_segments() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leaked, f"shared memory left in /dev/shm: {sorted(leaked)}"
    # The temporary directory is machine-wide too.
    while (left_temp := temp_entries() - temp_before) and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    assert not left_temp, f"temporary folders outlived the test: {sorted(left_temp)}"


def tagged_processes(tag: str) -> list[psutil.Process]:
    """Live processes whose environment carries `VIDPIPE_TEST_TAG=tag` (a CLI run's tree)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("VIDPIPE_TEST_TAG") == tag:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_for_file(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Wait until `path` exists; fail if `proc` ends first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def assert_tree_gone(tag: str, timeout: float = 5.0) -> None:
    """Fail unless every process of the tagged run has exited within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (left := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes outlived the run: {[p.cmdline() for p in left]}"


def assert_only_recorded_pieces(out: Path) -> None:
    """After a failed run: no partial or temp file anywhere under `out`, and no piece but those
    the task checkpoints record as finished (kept for `--resume`)."""
    import json

    assert not list(out.rglob("*.part")) and not list(out.rglob("*.tmp"))
    for folder in (out / ".vidpipe" / "pieces").glob("*"):
        state = json.loads((out / f"{folder.name}.checkpoint.json").read_text())
        done = [] if state["complete"] else state["segments_done"]
        expected = {f"{n:04d}{ext}" for n in done for ext in (".mp4", ".digests")}
        assert {p.name for p in folder.iterdir()} == expected


class Cli:
    """Runs `python -m pipeline` in a subprocess whose whole tree carries a unique tag.

    `extra_env` is added to the subprocesses' environment.
    """

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex
        self.extra_env: dict[str, str] = {}
        self.started: list[subprocess.Popen[str]] = []

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "VIDPIPE_TEST_TAG": self.tag,
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def run(
        self, *args: str | Path, timeout: float = 120, cwd: Path = ROOT
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=cwd,
        )
        assert_tree_gone(self.tag)
        return done

    def start(self, *args: str | Path) -> subprocess.Popen[str]:
        """Start in a new session, as a terminal job would be (for signal tests)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            cwd=ROOT,
            start_new_session=True,
        )
        self.started.append(proc)
        return proc

    def kill_started(self) -> None:
        """Kill what a failed test left of the runs it started: their whole sessions."""
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()


@pytest.fixture
def cli() -> Iterator[Cli]:
    runner = Cli()
    yield runner
    runner.kill_started()


@pytest.fixture
def cli_without_ray(cli: Cli, tmp_path: Path) -> Cli:
    """A `cli` whose runs cannot import Ray, as on an installation without the `ray` extra."""
    blocker = tmp_path / "no_ray"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None\n")
    cli.extra_env["PYTHONPATH"] = str(blocker)
    return cli
