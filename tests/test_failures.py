"""Failures and interruptions: typed errors naming their cause, nothing partial, nothing left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_only_recorded_pieces, assert_tree_gone, shm_segments, tagged_processes
from stages_for_tests import DieAt, FailAt, FailFrom

from pipeline import EncoderSettings, RunOptions, StageError, WorkerCrashed
from pipeline.errors import RemoteTraceback
from pipeline.job import execute, plan
from pipeline.layouts import LAYOUTS as REGISTERED
from pipeline.plan.outdir import partial_path
from pipeline.plan.tasks import Task

LAYOUTS = ["serial", "threads", "processes"]


def _plan_with(clip: Path, out: Path, layout: str, *tasks: Task):  # type: ignore[no-untyped-def]
    base = plan(clip, RunOptions(out_dir=out, layout=layout))
    return base.with_tasks(*tasks)


def _task(name: str, *stages) -> Task:  # type: ignore[no-untyped-def]
    return Task(name, tuple(stages), f"{name}.mp4", EncoderSettings(), keep_audio=False)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_stage_error_names_stage_and_frame(layout, tiny_clip, tmp_path) -> None:
    job = _plan_with(tiny_clip, tmp_path, layout, _task("bad", FailAt(3)), _task("good"))
    with pytest.raises(StageError) as caught:
        execute(job)
    err = caught.value
    assert (err.task, err.stage, err.index) == ("bad", "fail-at", 3)
    assert "stage 'fail-at' failed on frame 3" in str(err)
    cause = err.__cause__
    if layout == "processes":  # the worker's traceback travels with the error
        assert isinstance(cause, RemoteTraceback) and "ValueError: bad frame 3" in cause.tb
    else:
        assert isinstance(cause, ValueError)
    assert not (tmp_path / "bad.mp4").exists()
    assert not list(tmp_path.glob("*.part")), "no partial output is left"
    assert not (tmp_path / "report.json").exists()


@pytest.mark.parametrize("layout", ["pool", "hybrid", "serial"])
def test_the_earliest_failing_frame_is_named_whichever_fails_first(
    layout, tiny_clip, tmp_path
) -> None:
    # Frame 3 fails half a second after frame 4 does: a pool hears of frame 4's failure first.
    job = _plan_with(tiny_clip, tmp_path, layout, _task("bad", FailFrom(3, delay=0.5)))
    with pytest.raises(StageError) as caught:
        execute(job)
    assert caught.value.index == 3, str(caught.value)
    cause = caught.value.__cause__
    assert "bad frame 3" in (cause.tb if isinstance(cause, RemoteTraceback) else str(cause))


@pytest.mark.timeout(30)
def test_a_killed_worker_fails_the_run_naming_its_task(tiny_clip, tmp_path) -> None:
    job = _plan_with(tiny_clip, tmp_path, "processes", _task("doomed", DieAt(2)), _task("good"))
    started = time.monotonic()
    with pytest.raises(WorkerCrashed) as caught:
        execute(job)
    assert time.monotonic() - started < 10
    assert caught.value.task == "doomed"
    assert "killed by SIGKILL" in str(caught.value)
    assert not list(tmp_path.glob("*.part")) and not (tmp_path / "doomed.mp4").exists()


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_killed_worker_exits_1_from_the_cli(method, cli, tmp_path, make_clip) -> None:
    clip = make_clip("long.mp4", size="320x240", frames=300)
    out = tmp_path / "out"
    proc = cli.start(
        "run",
        clip,
        "--out",
        out,
        "--start-method",
        method,
        "--particles",
        "2000",
        "--save-every",
        "1",
    )
    worker = _wait_for_worker(cli.tag, "rendered.mp4")
    worker.kill()
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 1
    assert stderr.strip().splitlines() == [
        "error: task 'render': worker process died (killed by SIGKILL)"
    ]
    assert_tree_gone(cli.tag)
    assert not list(out.glob("*.part")) and not (out / "rendered.mp4").exists()


def _wait_for_worker(tag: str, output: str, timeout: float = 30):  # type: ignore[no-untyped-def]
    """The worker process writing `output`: the parent of the ffmpeg encoder that writes it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in tagged_processes(tag):
            try:
                if any(arg.endswith(partial_path(Path(output)).name) for arg in proc.cmdline()):
                    return proc.parent()
            except Exception:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no worker writing {output} started")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("layout", "start"),
    [(layout, "spawn") for layout in REGISTERED]
    + [(layout, "fork") for layout in ("processes", "hybrid", "pool", "segments")],
)
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_exits_promptly_and_leaves_nothing(
    layout, start, signum, code, cli, tmp_path, make_clip
) -> None:
    clip = make_clip("long.mp4", size="320x240", frames=300, gop=30)
    out = tmp_path / "out"
    proc = cli.start(
        "run",
        clip,
        "--out",
        out,
        "--layout",
        layout,
        "--start-method",
        start,
        "--workers",
        "2",
        "--particles",
        "2000",
        "--save-every",
        "1",
    )
    deadline = time.monotonic() + 30
    while not list((out / "thumbnails" / "render").glob("*.jpg")):
        assert proc.poll() is None and time.monotonic() < deadline, "run never got going"
        time.sleep(0.02)
    if layout == "pool":
        assert shm_segments(), "the pool moves frames through shared memory"
    sent = time.monotonic()
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # Ctrl-C: the terminal signals the whole foreground group
    else:
        proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=10)
    elapsed = time.monotonic() - sent
    assert proc.returncode == code, stderr
    assert elapsed < 3, f"took {elapsed:.1f} s to stop"
    assert "Traceback" not in stderr and stderr.startswith("error: interrupted")
    assert_tree_gone(cli.tag)  # shared memory: checked by the autouse fixture after the test
    assert not list(out.glob("*.part")) and not (out / "rendered.mp4").exists()
    assert not (out / "report.json").exists()
    assert_only_recorded_pieces(out)  # finished segments stay, for --resume


def test_a_failed_run_removes_the_temp_files_of_saves_killed_mid_write(tiny_clip, tmp_path) -> None:
    from pipeline.job import _remove_leftovers, plan

    job = plan(tiny_clip, RunOptions(out_dir=tmp_path, layout="serial"))
    thumbs = tmp_path / "thumbnails" / "render"
    thumbs.mkdir(parents=True)
    left = [
        thumbs / ".vidpipe-tmp-frame_000004.jpg.x1y2.tmp",
        tmp_path / ".vidpipe-tmp-render.checkpoint.json.z.tmp",
        tmp_path / ".rendered.mp4.vidpipe.part",
    ]
    theirs = [thumbs / ".frame_000004.jpg.x1y2.tmp", tmp_path / ".session.tmp"]
    for path in left + theirs:
        path.write_bytes(b"half a file")  # what a worker SIGKILLed inside a save leaves
    _remove_leftovers(job)
    assert not any(path.exists() for path in left)
    assert all(path.exists() for path in theirs), "only vidpipe's temporary files go"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_workers_orphaned_by_a_killed_run_exit_quietly(method, cli, tmp_path, make_clip) -> None:
    clip = make_clip("long.mp4", size="320x240", frames=300)
    out = tmp_path / "out"
    proc = cli.start(
        "run", clip, "--out", out, "--start-method", method, "--particles", "2000",
        "--save-every", "1", "--no-progress",
    )  # fmt: skip
    _wait_for_worker(cli.tag, "rendered.mp4")
    time.sleep(0.3)
    proc.kill()  # the main process only: its workers are orphaned, and die with it
    _, stderr = proc.communicate(timeout=20)  # EOF once every process holding stderr is gone
    assert_tree_gone(cli.tag)
    assert "Traceback" not in stderr and "Error" not in stderr, stderr


def test_a_child_signalled_before_it_chose_its_handling_dies_quietly() -> None:
    # A failing run stops the workers it has just forked; one signalled before it sets its own
    # handlers used to raise inside the fork's bookkeeping, printing to the user's terminal.
    code = (
        "import os, signal, sys, time\n"
        "from pipeline.errors import interrupt_on\n"
        "interrupt_on(signal.SIGTERM)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    time.sleep(10)\n"
        "    os._exit(0)\n"
        "time.sleep(0.2)\n"
        "os.kill(pid, signal.SIGTERM)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "True" and done.stderr == "", done.stderr
