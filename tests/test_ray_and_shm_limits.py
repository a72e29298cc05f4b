"""Ray's private instance and shared memory at a user's limits: loopback only, folders no other
user can write, a long TMPDIR, and /dev/shm full or read-only (issue 23: D13, D14, D21, D22)."""

from __future__ import annotations

import errno
import importlib.util
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import psutil
import pytest
from conftest import ROOT

HAS_RAY = importlib.util.find_spec("ray") is not None
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}

# A user's stage that holds the run at its first frame until the test says go, so that the
# test looks at a running instance without racing it.
GATE = """
import os, time
from pathlib import Path

class Gate:
    def process(self, frame, index):
        gate = Path(os.environ["GATE_DIR"])
        if not (gate / "go").exists():
            (gate / "ready").touch()
            deadline = time.monotonic() + 120
            while not (gate / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return frame
"""


def _listening(procs: list[psutil.Process]) -> dict[str, set[str]]:
    """The addresses each process listens on (TCP) or is bound to (unconnected UDP)."""
    found: dict[str, set[str]] = {}
    for proc in procs:
        try:
            name = proc.name()
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN or (conn.type == 2 and not conn.raddr):
                    found.setdefault(name, set()).add(conn.laddr.ip)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _reachable_by_others(path: Path) -> list[str]:
    """Folders from `path` up to / that another user could write (a sticky /tmp is safe)."""
    bad = []
    for folder in [path, *path.parents]:
        mode = folder.lstat().st_mode
        if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
            bad.append(f"{oct(mode & 0o7777)} {folder}")
    return bad


def _session_root(procs: list[psutil.Process]) -> Path:
    """The folder of ours that holds Ray's `--temp-dir`, read from `ray start`'s command line."""
    for proc in procs:
        cmd = proc.cmdline()
        if "--temp-dir" in cmd:
            return Path(cmd[cmd.index("--temp-dir") + 1]).parent
    raise AssertionError("no `ray start --temp-dir` among the run's processes")


@pytest.mark.skipif(not HAS_RAY, reason="the ray extra is not installed")
@pytest.mark.timeout(240)
def test_a_local_ray_instance_is_private_with_a_long_tmpdir(cli, tiny_clip, tmp_path) -> None:
    """D13, D14, D21 in one Ray run (they are slow): a TMPDIR of about 60 characters works,
    every process of the instance listens on loopback only, its folder is out of other users'
    reach while it runs and gone afterwards."""
    long_temp = tmp_path / ("t" * max(1, 60 - len(str(tmp_path)) - 1))
    long_temp.mkdir()
    gate = tmp_path / "gate"
    gate.mkdir()
    (tmp_path / "gate.py").write_text(GATE)
    before = set(Path("/tmp").glob("vidpipe-ray-*"))
    cli.extra_env.update(TMPDIR=str(long_temp), GATE_DIR=str(gate))
    stage = f"compress:{tmp_path / 'gate.py'}:Gate"
    args = ("--tasks", "compress", "--stage", stage, "--workers", "1", "--no-progress")
    proc = cli.start("run", tiny_clip, "--out", tmp_path / "out", "--layout", "ray", *args)
    deadline = time.monotonic() + 150
    while not (gate / "ready").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (gate / "ready").exists(), proc.communicate(timeout=30)[1]
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    listening = _listening(tree)
    root = _session_root(tree)
    exposed = _reachable_by_others(root)
    root_mode = (stat.S_IMODE(root.stat().st_mode), root.stat().st_uid)
    ray_folder_mode = stat.S_IMODE((root / "r").stat().st_mode)
    (gate / "go").touch()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert {"gcs_server", "raylet", "ray::encode_segment"} <= listening.keys(), listening
    assert all(ips <= LOOPBACK for ips in listening.values()), listening
    assert root.parent == Path("/tmp")  # TMPDIR was too long for Ray's sockets
    assert not exposed  # nothing from / down to our folder is writable by others
    assert root_mode == (0o700, os.getuid())
    assert ray_folder_mode == 0o777  # Ray's own choice, harmless inside ours
    assert not root.exists()
    assert set(Path("/tmp").glob("vidpipe-ray-*")) == before


def test_the_session_folder_is_ours_and_short_enough(monkeypatch, tmp_path) -> None:
    """D14, D21 without Ray: a 0700 folder in TMPDIR, or in /tmp when TMPDIR is too long."""
    from pipeline.layouts.cluster import instance

    short = tempfile.mkdtemp(dir="/tmp", prefix="vp")
    monkeypatch.setattr(tempfile, "tempdir", short)
    try:
        made = instance.session_root()
        assert made.parent == Path(short)
        assert stat.S_IMODE(made.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(short)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / ("x" * 60)))
    made = instance.session_root()
    try:
        assert made.parent == Path("/tmp")
        assert stat.S_IMODE(made.stat().st_mode) == 0o700
    finally:
        made.rmdir()


def test_a_tmpdir_too_long_with_no_short_folder_is_one_line(monkeypatch, tmp_path) -> None:
    from pipeline.errors import ConfigError
    from pipeline.layouts.cluster import instance

    long_temp = str(tmp_path / ("x" * 60))
    monkeypatch.setattr(tempfile, "tempdir", long_temp)
    monkeypatch.setattr(instance, "SHORT_TEMP", str(tmp_path / "no-such-folder"))
    with pytest.raises(ConfigError) as raised:
        instance.session_root()
    message = str(raised.value)
    assert f"the temporary directory {long_temp} (TMPDIR) is too long" in message
    assert "set TMPDIR to a writable folder of at most" in message
    assert "\n" not in message


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs `unshare -m` (root) for a private /dev/shm")
@pytest.mark.timeout(60)
@pytest.mark.parametrize("mount", ["size=16k", "size=150k", "ro"])
def test_shared_memory_too_small_or_read_only_is_one_line(cli, tiny_clip, tmp_path, mount) -> None:
    """D22: a private /dev/shm, full or read-only: one line naming it, what it has and needs,
    and the way out; exit 2 (the machine's limit, found before any frame is processed)."""
    run = [sys.executable, "-m", "pipeline", "run", str(tiny_clip), "--out", str(tmp_path / "o")]
    run += ["--layout", "pool", "--tasks", "render", "--transport", "shm", "--no-progress"]
    script = f"mount -t tmpfs -o {mount} tmpfs /dev/shm && exec {shlex.join(run)}"
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=50,
        env=cli.env(),
        cwd=ROOT,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: shared memory (/dev/shm) cannot hold a frame ring"), lines
    assert re.search(r"\d+ KiB free, \d+ KiB needed; .* use --transport pickle$", lines[0])
    assert not (tmp_path / "o" / "rendered.mp4").exists()


def test_a_segment_that_cannot_be_reserved_is_one_line(monkeypatch) -> None:
    """D22 in-process: pages that cannot be reserved (ENOSPC) fail at creation, not SIGBUS."""
    from pipeline.engine import shm
    from pipeline.errors import ConfigError
    from pipeline.stages.base import StreamSpec

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    name = f"vidpipe-test{os.getpid()}-reserve-in"
    with pytest.raises(
        ConfigError, match=r"\(No space left on device\): .* use --transport pickle"
    ):
        shm.SharedFrameRing.create(name, StreamSpec(width=16, height=16, fps=Fraction(25)), 2)
    assert not Path("/dev/shm", name).exists()


def test_the_session_folder_goes_when_ray_does_not_start(monkeypatch) -> None:
    """D14's neighbour: a local instance that fails to start leaves no folder behind."""
    import contextlib

    from pipeline.errors import PipelineError
    from pipeline.layouts.cluster import instance

    made: list[Path] = []

    @contextlib.contextmanager
    def failing(root: Path, cpus: int):  # type: ignore[no-untyped-def]
        made.append(root)
        raise PipelineError("could not start a local Ray instance (test)")
        yield ""

    monkeypatch.setattr(instance, "_head_node", failing)
    with pytest.raises(PipelineError), instance._local_instance(1):
        pass
    assert made and not made[0].exists()
