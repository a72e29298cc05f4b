"""No ffmpeg vidpipe starts outlives it, also on `kill -9`; SIGHUP (a closed terminal) is a clean
shutdown like SIGTERM; a resumed run writes a new partial file, never the inode a killed run's
ffmpeg may still hold (issue 23, D4, D15, D16)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from conftest import ROOT, assert_tree_gone

# A process that starts ffmpeg children the way vidpipe does, one per role, then waits.
_STARTER = textwrap.dedent(
    """
    import sys, threading, time
    from pipeline.media import ffmpeg
    args = ["-re", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=5", "-f", "null", "-"]
    procs = [ffmpeg.FFmpegProcess(args, role="test", stdin=False, stdout=False)]
    # one started from a thread that goes on waiting for it, as a task thread does
    threading.Thread(
        target=lambda: procs.append(ffmpeg.FFmpegProcess(args, role="t", stdin=False,
        stdout=False)) or time.sleep(600), daemon=True).start()
    threading.Thread(target=lambda: ffmpeg.run_ffmpeg(args), daemon=True).start()
    while len(procs) < 2: time.sleep(0.01)
    print("started", flush=True)
    time.sleep(600)
    """
)


def _ffmpeg_children(parent: psutil.Process) -> list[psutil.Process]:
    return [p for p in parent.children(recursive=True) if "ffmpeg" in p.name()]


@pytest.mark.timeout(60)
def test_ffmpeg_children_die_with_a_killed_parent() -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", _STARTER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert starter.stdout is not None and starter.stdout.readline() == "started\n"
        parent = psutil.Process(starter.pid)
        deadline = time.monotonic() + 10
        while len(children := _ffmpeg_children(parent)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(children) == 3
        # each in a process group of its own, as vidpipe starts them: kill -9 of the parent's
        # group would not reach them
        assert all(os.getpgid(c.pid) != os.getpgid(starter.pid) for c in children)
        starter.kill()
        starter.wait()
        _gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"ffmpeg outlived its parent: {[p.cmdline() for p in alive]}"
    finally:
        starter.kill()
        starter.wait()


_WAITER = textwrap.dedent(
    """
    import os, time
    class Wait:
        '''Holds the run at frame 3 until the test removes the gate file.'''
        def __init__(self, gate=""):
            self.gate = gate
        def process(self, frame, index):
            if index == 3:
                open(self.gate + ".reached", "w").close()
                while os.path.exists(self.gate):
                    time.sleep(0.02)
            return frame
    """
)


def _held_run(cli, tmp_path: Path, clip: Path, layout: str, out: Path) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    stage = tmp_path / "wait_stage.py"
    stage.write_text(_WAITER)
    gate = tmp_path / "gate"
    gate.write_text("")
    proc = cli.start(
        "run", clip, "--out", out, "--layout", layout, "--tasks", "compress",
        "--stage", f"compress:{stage}:Wait:gate={gate}", "--no-progress",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not Path(f"{gate}.reached").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached the stage's gate"
        time.sleep(0.02)
    return proc


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", ["serial", "processes"])
def test_sighup_is_a_clean_shutdown_like_sigterm(layout, cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "H"
    proc = _held_run(cli, tmp_path, tiny_clip, layout, out)
    os.killpg(proc.pid, signal.SIGHUP)  # the terminal closed: its whole group is told
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 129, err
    assert err.strip().splitlines() == ["error: interrupted by SIGHUP"]
    assert_tree_gone(cli.tag)
    assert not [p for p in out.rglob("*") if p.name.endswith((".part", ".tmp"))]
    assert not (out / "compressed.mp4").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", ["serial", "segments"])
def test_kill_9_of_the_whole_run_leaves_no_ffmpeg_and_resume_finishes(
    layout, cli, make_clip, tmp_path
) -> None:
    clip = make_clip("kill9.mp4", size="160x120", frames=24, audio=True, gop=6)
    out = tmp_path / "K"
    proc = _held_run(cli, tmp_path, clip, layout, out)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert_tree_gone(cli.tag)  # every ffmpeg, in its own group, died with the run
    (tmp_path / "gate").unlink()
    resumed = cli.run(
        "run", clip, "--out", out, "--layout", layout, "--tasks", "compress", "--resume",
        "--stage", f"compress:{tmp_path / 'wait_stage.py'}:Wait:gate={tmp_path / 'gate'}",
        "--no-progress",
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "compressed.mp4").stat().st_size > 0
    assert not [p for p in out.rglob("*") if p.name.endswith((".part", ".tmp"))]


def test_a_partial_output_is_a_new_file_never_the_inode_of_a_killed_runs(tmp_path) -> None:
    from pipeline.media.sink import PartialOutput
    from pipeline.plan.outdir import partial_path

    target = tmp_path / "rendered.mp4"
    stale = partial_path(target)
    stale.write_bytes(b"what a killed run's ffmpeg still writes")
    held = os.open(stale, os.O_WRONLY)  # the orphan's descriptor
    try:
        inode = os.fstat(held).st_ino
        PartialOutput(target)
        assert not stale.exists() or stale.stat().st_ino != inode
    finally:
        os.close(held)
