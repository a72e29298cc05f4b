"""Nothing hangs without a word: a stage stuck for ever, an input that cannot be read twice, a
process of the run that stops. Each run ends promptly, says why, and leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import time

import psutil
import pytest
from conftest import assert_tree_gone, tagged_processes, wait_for_file


@pytest.mark.timeout(60)
@pytest.mark.parametrize("layout", ["threads", "hybrid", "serial", "processes"])
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stage_stuck_for_ever_does_not_hold_an_interrupt(
    layout, signum, code, cli, make_clip, tmp_path
) -> None:
    clip = make_clip("stuck.mp4", size="160x120", frames=60)
    out = tmp_path / "out"
    proc = cli.start(
        "run", clip, "--out", out, "--layout", layout, "--tasks", "render", "--save-every", "1",
        "--stage", "render:tests.stages_for_tests:Hangs:at=3", "--no-progress",
    )  # fmt: skip
    wait_for_file(out / "thumbnails" / "render" / "frame_000002.jpg", proc)
    time.sleep(0.5)  # the stage is stuck now
    sent = time.monotonic()
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # Ctrl-C: the terminal signals the whole foreground group
    else:
        proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=15)
    elapsed = time.monotonic() - sent
    assert proc.returncode == code, stderr
    assert elapsed < 3, f"took {elapsed:.1f} s to stop"
    assert stderr.strip().splitlines() == [f"error: interrupted by {signal.Signals(signum).name}"]
    assert_tree_gone(cli.tag)
    assert not (out / "rendered.mp4").exists() and not list(out.rglob("*.part"))
    assert not list(out.rglob(".vidpipe-tmp-*"))


@pytest.mark.timeout(30)
def test_a_fifo_input_is_refused_without_waiting_for_a_writer(cli, tmp_path) -> None:
    fifo = tmp_path / "video.mp4"
    os.mkfifo(fifo)
    started = time.monotonic()
    done = cli.run("run", fifo, "--out", tmp_path / "out", timeout=20)
    assert time.monotonic() - started < 10
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.strip()
        == f"error: {fifo}: not a regular file (a pipe, device or socket cannot be read twice)"
    )


def _stop(tag: str, pick, timeout: float = 30) -> psutil.Process:  # type: ignore[no-untyped-def]
    """SIGSTOP the first process of the tagged run that `pick` chooses."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for found in tagged_processes(tag):
            try:
                if pick(found):
                    found.suspend()
                    return found
            except psutil.Error:
                continue
        time.sleep(0.02)
    raise AssertionError("no such process started")


def _encoder_of(output: str):  # type: ignore[no-untyped-def]
    return lambda p: any(arg.endswith(f".{output}.vidpipe.part") for arg in p.cmdline())


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("layout", "which", "named"),
    [
        ("serial", "encoder", r"process \d+ \(ffmpeg writing rendered\.mp4\) is stopped"),
        ("processes", "encoder", r"process \d+ \(ffmpeg writing rendered\.mp4\) is stopped"),
        ("processes", "task", r"process \d+ \(python[\d.]*\) is stopped"),
    ],
)
def test_a_stopped_process_fails_the_run_naming_it(
    layout, which, named, cli, make_clip, tmp_path
) -> None:
    clip = make_clip("stall.mp4", size="160x120", frames=300)
    out = tmp_path / "out"
    proc = cli.start(
        "run", clip, "--out", out, "--layout", layout, "--tasks", "render",
        "--stall-timeout", "2", "--save-every", "1", "--no-progress",
    )  # fmt: skip
    wait_for_file(out / "thumbnails" / "render" / "frame_000003.jpg", proc)
    if which == "encoder":
        stopped = _stop(cli.tag, _encoder_of("rendered.mp4"))
    else:
        stopped = _stop(cli.tag, lambda p: any("spawn_main" in arg for arg in p.cmdline()))
    started = time.monotonic()
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    assert time.monotonic() - started < 2 + 5
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: the run stalled: no frame moved for 2 s"
    ), stderr
    assert re.search(named, lines[0]) and str(stopped.pid) in lines[0], lines[0]
    assert_tree_gone(cli.tag)
    assert not (out / "rendered.mp4").exists() and not list(out.rglob("*.part"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("layout", ["serial", "threads"])
def test_a_teardown_stuck_for_ever_does_not_hold_an_interrupt(
    layout, cli, make_clip, tmp_path
) -> None:
    clip = make_clip("stuck.mp4", size="160x120", frames=60)
    out = tmp_path / "out"
    proc = cli.start(
        "run", clip, "--out", out, "--layout", layout, "--tasks", "render", "--save-every", "1",
        "--stall-timeout", "0", "--stage", "render:tests.stages_for_tests:SlowHangingTeardown",
        "--no-progress",
    )  # fmt: skip
    wait_for_file(out / "thumbnails" / "render" / "frame_000002.jpg", proc)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - sent < 4
    assert_tree_gone(cli.tag)
    assert not (out / "rendered.mp4").exists() and not list(out.rglob("*.part"))


@pytest.mark.timeout(60)
def test_a_pool_worker_stopped_while_it_starts_fails_the_run_in_one_line(
    cli, make_clip, tmp_path
) -> None:
    # Stopped before it has read what its parent sent it: the other worker does every frame,
    # then the task waits for this one, stalls, and must stop it before its own queues go (a
    # worker resumed after them would fail on them with a traceback of its own).
    clip = make_clip("stall.mp4", size="160x120", frames=300)
    out = tmp_path / "out"
    proc = cli.start(
        "run", clip, "--out", out, "--layout", "pool", "--workers", "2", "--tasks", "render",
        "--stall-timeout", "2", "--no-progress",
    )  # fmt: skip
    worker = _stop(
        cli.tag,
        lambda p: any("spawn_main" in arg for arg in p.cmdline()) and p.parent().pid != proc.pid,
        timeout=60,
    )
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "stalled" in lines[0] and str(worker.pid) in lines[0], stderr
    assert_tree_gone(cli.tag)


def test_a_stopped_pool_worker_fails_the_run_in_one_line(cli, make_clip, tmp_path) -> None:
    clip = make_clip("stall.mp4", size="160x120", frames=300)
    out = tmp_path / "out"
    proc = cli.start(
        "run", clip, "--out", out, "--layout", "pool", "--workers", "2", "--tasks", "render",
        "--stall-timeout", "2", "--save-every", "1", "--no-progress",
    )  # fmt: skip
    wait_for_file(out / "thumbnails" / "render" / "frame_000003.jpg", proc)
    render = _stop(
        cli.tag,
        lambda p: (
            "vidpipe-pool-0" in " ".join(p.cmdline())
            or (any("spawn_main" in arg for arg in p.cmdline()) and p.parent().pid != proc.pid)
        ),
    )
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "stalled" in lines[0] and str(render.pid) in lines[0], stderr
    assert_tree_gone(cli.tag)
