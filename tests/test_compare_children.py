"""What compare says when one of its runs ends badly without compare being signalled, and what a
run that cannot write says under every layout.

Issue 23: N5 (a run killed by SIGKILL: named, its partial files removed), N6 (a run interrupted
from outside while compare itself was not: a failure of that layout, not compare's interruption),
N10 (a full disk during a background save: the same one line under every layout), N11 (a
terminal that cannot show a name: compare, check-stage and predict print it escaped).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from conftest import Cli, assert_tree_gone
from test_user_faults import FULL_DISK_HOOK, _with_hook

ALL_LAYOUTS = ["serial", "threads", "processes", "pool", "segments"]


def _one_error_line(stderr: str) -> str:
    """The one `error:` line of `stderr`, after compare's progress lines (`[1/2] ...`)."""
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("[")]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "unexpected" not in lines[0], stderr
    return lines[0]


def _started_compare(
    cli: Cli, clip: Path, out: Path, layout: str = "serial"
) -> tuple[subprocess.Popen[str], int]:
    """A compare of serial and processes, once its run of `layout` has begun writing its
    output; compare's process, and that run's pid."""
    proc = cli.start(
        "compare", clip, "--layouts", "serial,processes", "--repeat", "1", "--tasks", "render",
        "--particles", "3000", "--out", out,
    )  # fmt: skip
    deadline = time.monotonic() + 40
    while not list((out / "runs" / f"{layout}-1").glob(".*.vidpipe.part")):
        assert proc.poll() is None and time.monotonic() < deadline, "no run got going"
        time.sleep(0.02)
    (run,) = _runs_of(proc.pid)
    return proc, run


def _runs_of(pid: int) -> list[int]:
    """The pids of the `vidpipe run` processes compare `pid` has started (not the ffmpeg it
    probes the input with)."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            if "run" in child.cmdline()[3:4]:
                found.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def _assert_nothing_left(cli: Cli, out: Path) -> None:
    assert_tree_gone(cli.tag)
    assert not list(out.rglob("*.vidpipe.part")), sorted(out.rglob("*"))
    assert not list(out.rglob(".vidpipe-tmp-*")), sorted(out.rglob("*"))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("layout", ["serial", "processes"])
def test_a_run_killed_by_sigkill_is_named_and_its_partial_files_go(
    layout, cli, make_clip, tmp_path
) -> None:
    """N5: `kill -KILL` of compare's run: one line naming the layout and the signal, exit 1,
    and no partial or temp file nor process of that run (its workers and ffmpeg included) is
    left."""
    out = tmp_path / "cmp"
    clip = make_clip("slow.mp4", size="320x240", frames=300)
    proc, run = _started_compare(cli, clip, out, layout)
    os.kill(run, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    line = _one_error_line(stderr)
    assert line == f"error: layout '{layout}' failed: its run was killed by SIGKILL", line
    _assert_nothing_left(cli, out)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_run_interrupted_from_outside_fails_its_layout_not_compare(
    signum, cli, make_clip, tmp_path
) -> None:
    """N6: SIGTERM, SIGINT or SIGHUP to compare's run while compare itself gets none: that
    layout failed, named with the signal, exit 1 (not compare's own 143, 130 or 129)."""
    out = tmp_path / "cmp"
    proc, run = _started_compare(cli, make_clip("slow.mp4", size="320x240", frames=300), out)
    os.kill(run, signum)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    line = _one_error_line(stderr)
    name = signal.Signals(signum).name
    assert line == f"error: layout 'serial': its run was interrupted by {name} from outside", line
    _assert_nothing_left(cli, out)


@pytest.mark.timeout(60)
def test_a_run_killed_while_starting_is_named(cli, tiny_clip, tmp_path) -> None:
    """N5's neighbour: SIGTERM to a run that has not yet chosen how to handle it (still
    importing): the layout and the signal are named, never an empty message."""
    out = tmp_path / "cmp"
    proc = cli.start("compare", tiny_clip, "--layouts", "serial", "--repeat", "1", "--out", out)
    deadline = time.monotonic() + 20
    while not (runs := _runs_of(proc.pid)):
        assert proc.poll() is None and time.monotonic() < deadline, "no run started"
        time.sleep(0.005)
    os.kill(runs[0], signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    line = _one_error_line(stderr)
    assert line in (
        "error: layout 'serial' failed: its run was killed by SIGTERM",
        "error: layout 'serial': its run was interrupted by SIGTERM from outside",
    ), line
    _assert_nothing_left(cli, out)


@pytest.mark.parametrize("layout", ALL_LAYOUTS)
def test_a_full_disk_during_a_background_save_is_one_line_under_every_layout(
    layout, cli, make_clip, tmp_path
) -> None:
    """N10: ENOSPC writing a checkpoint in the background: the same line as any full disk,
    naming the file and what to do, exit 1, under every layout."""
    out = tmp_path / "out"
    _with_hook(cli, tmp_path, FULL_DISK_HOOK)
    cli.extra_env["VIDPIPE_TEST_FULL"] = "compress.checkpoint.json"
    clip = make_clip("clip.mp4", size="160x120", frames=50, audio=True, gop=10)
    done = cli.run("run", clip, "--out", out, "--layout", layout, "--tasks", "compress",
                   "--save-every", "20", "--no-progress")  # fmt: skip
    assert done.returncode == 1, done.stderr
    line = _one_error_line(done.stderr)
    assert line == (
        f"error: no space left on the device ({out / 'compress.checkpoint.json'}): free space "
        "there (or choose another --out) and run again"
    ), line


BAD = os.fsdecode(b"bad\xff")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["compare", "check-stage", "predict"])
def test_a_name_an_ascii_terminal_cannot_show_is_escaped(command, cli, tiny_clip, tmp_path) -> None:
    """N11: PYTHONIOENCODING=ascii with names that are not ASCII (or not UTF-8): compare (and
    the runs it starts, which inherit the setting), check-stage and predict succeed and print
    the names escaped."""
    cli.extra_env["PYTHONIOENCODING"] = "ascii"
    if command == "compare":
        done = cli.run("compare", tiny_clip, "--out", tmp_path / "cé", "--layouts", "serial",
                       "--repeat", "1", "--tasks", "compress")  # fmt: skip
        shown = "c\\xe9"
    elif command == "check-stage":
        stage = tmp_path / f"{BAD}é.py"
        stage.write_text("def f(frame, index):\n    return frame\n")
        done = cli.run("check-stage", f"{stage}:f")
        shown = "bad\\udcff\\xe9.py"
    else:
        run = tmp_path / "sé"
        first = cli.run("run", tiny_clip, "--out", run, "--layout", "serial", "--no-progress")
        assert first.returncode == 0, first.stderr
        clip = tmp_path / f"{BAD}é.mp4"
        clip.write_bytes(tiny_clip.read_bytes())
        done = cli.run("predict", clip, "--from", run)
        shown = ""
    assert done.returncode == 0, done.stderr
    assert "unexpected" not in done.stderr
    assert shown in done.stdout
