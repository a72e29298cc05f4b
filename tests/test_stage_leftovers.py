"""What a stage leaves behind is the run's business (issue 23, D5, D17, D18).

A thread a stage starts and never stops neither holds vidpipe at exit nor passes for a stall;
a child process it starts and never stops is killed at the end of the run; either is named in
one warning line. A worker process stopped by a SIGTERM from outside fails the run naming that
worker, while a SIGTERM to vidpipe itself stays an interruption.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import ROOT, assert_tree_gone, tagged_processes, wait_for_file

LAYOUTS = ["serial", "threads", "processes", "pool", "segments"]
#: Every layout but ray, hybrid (a thread pool in a task process) among them.
NEIGHBOURS = [*LAYOUTS, "hybrid"]

#: A stage whose setup() starts a thread that never ends, not a daemon.
THREAD_STAGE = """\
import threading, time

class Lingers:
    def setup(self, spec):
        def forever():
            while True:
                time.sleep(0.05)
        threading.Thread(target=forever, name="lingering-loop").start()

    def process(self, frame, index):
        return frame
"""

#: A stage whose setup() starts a child process that it never stops; `session` puts it in a
#: session (and process group) of its own, out of reach of a worker's group kill.
CHILD_STAGE = """\
import os, subprocess, sys, time

class Spawns:
    def __init__(self, marker="", session=False, fail_at=-1, slow=0.0, stubborn=False):
        self.marker, self.session, self.fail_at, self.slow = marker, session, fail_at, slow
        self.stubborn = stubborn

    def setup(self, spec):
        # A stubborn child ignores SIGTERM (the disposition survives the exec).
        stubborn = ["sh", "-c", "trap '' TERM; exec sleep 1000"]
        command = stubborn if self.stubborn else ["sleep", "1000"]
        self.child = subprocess.Popen(command, start_new_session=self.session)
        if self.marker:
            with open(self.marker, "a") as f:
                f.write(f"{self.child.pid}\\n")

    def process(self, frame, index):
        if index == self.fail_at:
            raise ValueError(f"bad frame {index}")
        time.sleep(self.slow)
        return frame
"""


#: A stage that starts its thread on its first frame, in process(), not in setup().
LATE_THREAD_STAGE = """\
import threading, time

class LingersLater:
    started = False

    def process(self, frame, index):
        if not self.started:
            self.started = True
            def forever():
                while True:
                    time.sleep(0.05)
            threading.Thread(target=forever, name="late-loop").start()
        return frame
"""


def _stage_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "leftover_stage.py"
    path.write_text(text)
    return path


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def _pids_in(marker: Path) -> list[int]:
    return [int(line) for line in marker.read_text().split()] if marker.exists() else []


def _assert_dead(pids: list[int], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    for pid in pids:
        while psutil.pid_exists(pid) and time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        try:
            alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            alive = False
        assert not alive, f"the stage's child {pid} outlived the run"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", NEIGHBOURS)
def test_a_thread_a_stage_leaves_running_neither_holds_nor_stalls_the_run(
    layout, cli, tiny_clip, tmp_path
) -> None:
    stage = _stage_file(tmp_path, THREAD_STAGE)
    out = tmp_path / "out"
    started = time.monotonic()
    done = cli.run(
        "run", tiny_clip, "--out", out, "--layout", layout, "--workers", "2",
        "--tasks", "compress", "--stage", f"compress:{stage}:Lingers",
        "--stall-timeout", "20", "--no-progress", timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 20 + 10, "the run waited for the stage's thread"
    assert (out / "report.json").is_file() and (out / "compressed.mp4").is_file()
    warnings = _warnings(done.stderr)
    assert len(warnings) == 1, done.stderr
    assert re.match(
        r"warning: stage 'Lingers' left \d+ threads? running \(lingering-loop", warnings[0]
    ), warnings[0]
    assert "after teardown()" in warnings[0] and "without waiting" in warnings[0], warnings[0]
    assert "Traceback" not in done.stderr and "stalled" not in done.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", ["serial", "threads", "processes", "hybrid"])
def test_a_thread_started_in_process_is_found_and_named_too(
    layout, cli, tiny_clip, tmp_path
) -> None:
    stage = _stage_file(tmp_path, LATE_THREAD_STAGE)
    done = cli.run(
        "run", tiny_clip, "--out", tmp_path / "out", "--layout", layout, "--workers", "2",
        "--tasks", "compress", "--stage", f"compress:{stage}:LingersLater",
        "--stall-timeout", "20", "--no-progress", timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    warnings = _warnings(done.stderr)
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith("warning: stage 'LingersLater' left "), warnings[0]
    assert "late-loop" in warnings[0]


@pytest.mark.timeout(120)
def test_check_stage_exits_past_a_thread_the_stage_leaves_running(cli, tmp_path) -> None:
    stage = _stage_file(tmp_path, THREAD_STAGE)
    done = cli.run("check-stage", f"{stage}:Lingers", "--frames", "4", "--json", timeout=90)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["problems"] == []
    warnings = _warnings(done.stderr)
    assert len(warnings) == 1 and "stage 'Lingers' left" in warnings[0], done.stderr
    assert "lingering-loop" in warnings[0]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", NEIGHBOURS)
def test_a_child_process_a_stage_leaves_running_is_killed_and_named(
    layout, cli, tiny_clip, tmp_path
) -> None:
    stage = _stage_file(tmp_path, CHILD_STAGE)
    marker = tmp_path / "children"
    out = tmp_path / "out"
    done = cli.run(
        "run", tiny_clip, "--out", out, "--layout", layout, "--workers", "2",
        "--tasks", "compress", "--stage", f"compress:{stage}:Spawns:marker={marker}",
        "--no-progress", timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pids = _pids_in(marker)
    assert pids, "the stage never started its child"
    _assert_dead(pids)  # cli.run also checked every process of the run's tree is gone
    warnings = _warnings(done.stderr)
    assert len(warnings) == 1, done.stderr
    assert re.match(
        r"warning: stage 'Spawns' left \d+ child process(es)? running \(sleep", warnings[0]
    ), warnings[0]
    assert "killed" in warnings[0], warnings[0]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", ["processes", "segments"])
def test_a_stage_child_in_a_session_of_its_own_dies_with_the_worker(
    layout, cli, tiny_clip, tmp_path
) -> None:
    """A child out of the worker's process group escapes its group kill: it is found as the
    worker's child all the same."""
    stage = _stage_file(tmp_path, CHILD_STAGE)
    marker = tmp_path / "children"
    done = cli.run(
        "run", tiny_clip, "--out", tmp_path / "out", "--layout", layout, "--workers", "2",
        "--tasks", "compress",
        "--stage", f"compress:{stage}:Spawns:marker={marker},session=true", "--no-progress",
        timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    _assert_dead(_pids_in(marker))
    assert len(_warnings(done.stderr)) == 1, done.stderr


@pytest.mark.timeout(180)
def test_predict_kills_and_names_what_its_measurements_leave(cli, tiny_clip, tmp_path) -> None:
    """`predict` sets the stages up again after its serial run, to measure them: what they
    leave then goes too, and each stage is named once."""
    threads = _stage_file(tmp_path, THREAD_STAGE)
    children = tmp_path / "children.py"
    children.write_text(CHILD_STAGE)
    marker = tmp_path / "children"
    done = cli.run(
        "predict", tiny_clip, "--tasks", "compress",
        "--stage", f"compress:{threads}:Lingers",
        "--stage", f"compress:{children}:Spawns:marker={marker}", timeout=150,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(_pids_in(marker)) > 1, "predict set the stage up once only"
    _assert_dead(_pids_in(marker))
    warnings = _warnings(done.stderr)
    assert len(warnings) == 2, done.stderr
    assert "stage 'Lingers' left" in warnings[0] and "stage 'Spawns' left" in warnings[1]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", ["serial", "processes"])
def test_a_stage_child_that_ignores_sigterm_is_killed(layout, cli, tiny_clip, tmp_path) -> None:
    stage = _stage_file(tmp_path, CHILD_STAGE)
    marker = tmp_path / "children"
    done = cli.run(
        "run", tiny_clip, "--out", tmp_path / "out", "--layout", layout, "--tasks", "compress",
        "--stage", f"compress:{stage}:Spawns:marker={marker},stubborn=true", "--no-progress",
        timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    _assert_dead(_pids_in(marker))
    assert len(_warnings(done.stderr)) == 1, done.stderr


@pytest.mark.timeout(60)
def test_the_library_kills_a_stage_child_too(tiny_clip, tmp_path, capfd) -> None:
    """`pipeline.run` (no command line) kills and names what a stage left, as `vidpipe` does."""
    from pipeline import RunOptions
    from pipeline.config.settings import StageSpec
    from pipeline.job import run

    stage = _stage_file(tmp_path, CHILD_STAGE)
    marker = tmp_path / "children"
    options = RunOptions(
        out_dir=tmp_path / "out",
        layout="serial",
        tasks=("compress",),
        stages=(("compress", StageSpec(f"{stage}:Spawns", (("marker", str(marker)),))),),
    )
    run(tiny_clip, options)
    _assert_dead(_pids_in(marker))
    err = capfd.readouterr().err
    assert _warnings(err) and "stage 'Spawns' left 1 child process" in err, err


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", ["serial", "threads"])
def test_a_stage_child_is_killed_when_the_stage_fails(layout, cli, tiny_clip, tmp_path) -> None:
    stage = _stage_file(tmp_path, CHILD_STAGE)
    marker = tmp_path / "children"
    done = cli.run(
        "run", tiny_clip, "--out", tmp_path / "out", "--layout", layout, "--tasks", "compress",
        "--stage", f"compress:{stage}:Spawns:marker={marker},fail_at=3", "--no-progress",
        timeout=90,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    _assert_dead(_pids_in(marker))
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("warning: stage 'Spawns' left 1 child process"), lines
    assert lines[1].startswith("error: task 'compress': stage 'Spawns' failed on frame 3"), lines


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", ["serial", "threads"])
def test_a_stage_child_is_killed_when_the_run_is_interrupted(
    layout, cli, make_clip, tmp_path
) -> None:
    clip = make_clip("slow.mp4", size="160x120", frames=100)
    stage = _stage_file(tmp_path, CHILD_STAGE)
    marker = tmp_path / "children"
    proc = cli.start(
        "run", clip, "--out", tmp_path / "out", "--layout", layout, "--tasks", "compress",
        "--stage", f"compress:{stage}:Spawns:marker={marker},slow=0.2", "--no-progress",
    )  # fmt: skip
    wait_for_file(marker, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
    _assert_dead(_pids_in(marker))
    assert_tree_gone(cli.tag)
    assert stderr.strip().splitlines()[-1] == "error: interrupted by SIGTERM", stderr


def _python_workers(tag: str, parent: int) -> list[psutil.Process]:
    """The run's worker processes whose parent is `parent` (no helper of multiprocessing)."""
    found = []
    for proc in tagged_processes(tag):
        try:
            cmdline = " ".join(proc.cmdline())
            worker = proc.name().startswith("python")  # spawned, or forked (the parent's name)
            helper = "resource_tracker" in cmdline or "forkserver" in cmdline
            if proc.ppid() == parent and worker and not helper:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _a_worker(tag: str, parent: int, proc: subprocess.Popen[str]) -> psutil.Process:
    deadline = time.monotonic() + 60
    while not (workers := _python_workers(tag, parent)):
        assert proc.poll() is None and time.monotonic() < deadline, "no worker started"
        time.sleep(0.02)
    return workers[0]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("layout", "start", "named"),
    [
        ("processes", "spawn", "worker process"),
        ("processes", "fork", "worker process"),
        ("pool", "spawn", "worker process"),
        ("segments", "spawn", r"segment \d+ worker"),
        ("segments", "fork", r"segment \d+ worker"),
        ("hybrid", "spawn", "worker process"),
    ],
)
def test_sigterm_to_one_worker_fails_the_run_naming_that_worker(
    layout, start, named, cli, make_clip, tmp_path
) -> None:
    clip = make_clip("slow.mp4", size="160x120", frames=100)
    stage = _stage_file(tmp_path, CHILD_STAGE)
    marker = tmp_path / "children"
    out = tmp_path / "out"
    proc = cli.start(
        "run", clip, "--out", out, "--layout", layout, "--workers", "2", "--tasks", "compress",
        "--start-method", start,
        "--stage", f"compress:{stage}:Spawns:marker={marker},slow=0.1", "--no-progress",
    )  # fmt: skip
    wait_for_file(marker, proc)  # a stage is set up: its worker is at work
    worker = _a_worker(cli.tag, proc.pid, proc)
    worker.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    expected = f"error: task 'compress': {named} was stopped by SIGTERM from outside"
    assert len(errors) == 1 and re.fullmatch(expected, errors[0]), stderr
    assert "Traceback" not in stderr
    assert_tree_gone(cli.tag)
    assert not (out / "compressed.mp4").exists() and not list(out.rglob("*.part"))


@pytest.mark.timeout(120)
def test_sigterm_to_a_pool_worker_still_names_the_pool_worker(cli, make_clip, tmp_path) -> None:
    clip = make_clip("slow.mp4", size="160x120", frames=100)
    stage = _stage_file(tmp_path, CHILD_STAGE)
    marker = tmp_path / "children"
    proc = cli.start(
        "run", clip, "--out", tmp_path / "out", "--layout", "pool", "--workers", "2",
        "--tasks", "compress",
        "--stage", f"compress:{stage}:Spawns:marker={marker},slow=0.1", "--no-progress",
    )  # fmt: skip
    wait_for_file(marker, proc)
    task_process = _a_worker(cli.tag, proc.pid, proc)
    _a_worker(cli.tag, task_process.pid, proc).send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert re.fullmatch(
        r"error: task 'compress': pool worker \d+ (died \(killed by SIGTERM\)|was stopped by "
        r"SIGTERM from outside)",
        errors[0],
    ), stderr
    assert_tree_gone(cli.tag)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", ["processes", "segments"])
def test_sigterm_to_vidpipe_itself_is_still_an_interruption(
    layout, cli, make_clip, tmp_path
) -> None:
    clip = make_clip("slow.mp4", size="160x120", frames=100)
    stage = _stage_file(tmp_path, CHILD_STAGE)
    marker = tmp_path / "children"
    proc = cli.start(
        "run", clip, "--out", tmp_path / "out", "--layout", layout, "--workers", "2",
        "--tasks", "compress",
        "--stage", f"compress:{stage}:Spawns:marker={marker},slow=0.1", "--no-progress",
    )  # fmt: skip
    wait_for_file(marker, proc)
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted by SIGTERM", stderr
    assert_tree_gone(cli.tag)


def test_an_interrupt_that_lands_where_python_cannot_raise_is_delivered_again() -> None:
    """A SIGTERM whose handler runs in an at-fork callback or a `__del__` (a stage starting a
    child, ffmpeg starting) is not "Exception ignored" and lost: it interrupts what runs next
    (seen as a run that went on after SIGTERM, in the interrupt tests above)."""
    code = (
        "import os, signal\n"
        "from pipeline.errors import Interrupted, interrupt_on\n"
        "interrupt_on(signal.SIGTERM)\n"
        "class Dies:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        for _ in range(1000): pass\n"
        "try:\n"
        "    Dies()\n"
        "    for _ in range(10**8): pass\n"
        "    print('not interrupted')\n"
        "except Interrupted as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.stdout.strip() == "interrupted by SIGTERM", done.stdout + done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
