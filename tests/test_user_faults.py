"""Failures a user causes (their stage file, their limits, their disk, their terminal) are one
line naming the cause and what to do; what a user may legitimately write works everywhere.

Issue 23: D19 (stages that cannot be sent to a worker process, `__slots__`), D25 (the limit on
processes), D26 (a full disk at the very end, an ASCII-only terminal), D16 (a stage that ends
its process with `os._exit`).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Cli

PROCESS_LAYOUTS = ["processes", "hybrid", "pool", "segments"]
IN_PROCESS_LAYOUTS = ["serial", "threads"]

STAGE_FILE = """
import numpy as np
from dataclasses import dataclass

lam = lambda frame, index: frame  # noqa: E731


def _make():
    def inner(frame, index):
        return frame

    return inner


nested = _make()


class Slotted:
    __slots__ = ("add",)

    def __init__(self, add=1):
        self.add = add

    def process(self, frame, index):
        if self.add != 3:
            raise ValueError(f"the stage's state did not travel: add={self.add}")
        return frame


@dataclass
class Settings:  # no process(): not a stage, only held by one
    add: int = 3


class Configured:
    def __init__(self):
        self.settings = Settings()

    def process(self, frame, index):
        if self.settings.add != 3:
            raise ValueError("the stage's settings did not travel")
        return frame
"""


@pytest.fixture(scope="module")
def stage_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stages") / "m.py"
    path.write_text(textwrap.dedent(STAGE_FILE))
    return path


def _run_stage(cli: Cli, clip: Path, out: Path, layout: str, ref: str, *extra: str):  # type: ignore[no-untyped-def]
    return cli.run(
        "run", clip, "--out", out, "--layout", layout, "--tasks", "compress", "--workers", "2",
        "--stage", f"compress:{ref}", "--no-progress", *extra,
    )  # fmt: skip


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "unexpected" not in lines[0], lines
    return lines[0]


# --- D19: what cannot travel to a worker is refused at plan time; what can, travels ---------


@pytest.mark.parametrize("layout", PROCESS_LAYOUTS)
@pytest.mark.parametrize(
    ("name", "why"), [("lam", "a lambda"), ("nested", "defined inside a function")]
)
def test_a_stage_without_an_importable_name_is_refused_before_running(
    layout, name, why, cli, tiny_clip, tmp_path, stage_file
) -> None:
    """D19: refused at plan time, exit 2, one line saying why and what to write instead."""
    out = tmp_path / "out"
    done = _run_stage(cli, tiny_clip, out, layout, f"{stage_file}:{name}")
    assert done.returncode == 2, done.stderr
    line = _one_error_line(done.stderr)
    assert "cannot be sent to a worker process" in line and why in line, line
    assert "def" in line and "Traceback" not in done.stderr
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize("layout", IN_PROCESS_LAYOUTS)
def test_a_lambda_runs_where_nothing_is_sent(layout, cli, tiny_clip, tmp_path, stage_file) -> None:
    """D19: serial and threads pickle nothing, so a lambda is a stage like any other there."""
    done = _run_stage(cli, tiny_clip, tmp_path / "out", layout, f"{stage_file}:lam")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("layout", ["processes", "hybrid", "pool", "segments"])
def test_a_lambda_runs_in_forked_workers(layout, cli, tiny_clip, tmp_path, stage_file) -> None:
    """D19: a forked worker inherits its stages: nothing is sent, nothing refused; the threads
    of a frame pool (hybrid) get copies that share the function."""
    done = _run_stage(
        cli, tiny_clip, tmp_path / "out", layout, f"{stage_file}:lam", "--start-method", "fork"
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("layout", [*IN_PROCESS_LAYOUTS, *PROCESS_LAYOUTS])
@pytest.mark.parametrize("name", ["Slotted:add=3", "Configured"])
def test_a_stage_with_slots_or_settings_of_its_file_runs_under_every_layout(
    layout, name, cli, tiny_clip, tmp_path, stage_file
) -> None:
    """D19: a class using `__slots__`, or holding an instance of another class of its file,
    travels with its state (pickle's own protocol), under spawn as under every layout."""
    done = _run_stage(
        cli, tiny_clip, tmp_path / "out", layout, f"{stage_file}:{name}", "--start-method", "spawn"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["tasks"]["compress"]["frames"] == 12


# --- D26: an ASCII-only terminal, a full disk at the very end -------------------------------


@pytest.mark.parametrize("command", ["run", "probe"])
def test_a_name_the_terminal_cannot_show_is_printed_escaped(
    command, cli, tiny_clip, tmp_path
) -> None:
    """D26: PYTHONIOENCODING=ascii and a non-ASCII --out: the run succeeds (exit 0) and the
    names come out with backslash escapes."""
    cli.extra_env["PYTHONIOENCODING"] = "ascii"
    out = tmp_path / "out-é"
    if command == "run":
        done = cli.run("run", tiny_clip, "--out", out, "--layout", "serial", "--tasks",
                       "compress", "--no-progress")  # fmt: skip
        assert (out / "compressed.mp4").is_file()
    else:
        clip = tmp_path / "clip-é.mp4"
        clip.write_bytes(tiny_clip.read_bytes())
        done = cli.run("probe", clip)
    assert done.returncode == 0, done.stderr
    assert ("-\\u00e9" if command == "probe" else "-\\xe9") in done.stdout  # JSON's own escape
    assert not done.stderr


#: Loaded by every process of a run (sitecustomize): the Nth write of the file named in
#: VIDPIPE_TEST_FULL (`NAME@N`) finds the disk full, as `atomic_write_bytes` reports it.
FULL_DISK_HOOK = """
import errno, os
from pathlib import Path
from pipeline.plan import outdir

_write = outdir.atomic_write_bytes
_name, _, _nth = os.environ.get("VIDPIPE_TEST_FULL", "").partition("@")
_seen = [0]


def _full(path, data):
    if _name and Path(path).name == _name:
        _seen[0] += 1
        if _seen[0] >= int(_nth or 1):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    _write(path, data)


outdir.atomic_write_bytes = _full
"""


def _with_hook(cli: Cli, tmp_path: Path, hook: str) -> None:
    import os

    from conftest import ROOT

    folder = tmp_path / "hook"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(hook)
    paths = [str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")]
    cli.extra_env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))


@pytest.mark.parametrize("layout", ["serial", "processes", "segments"])
@pytest.mark.parametrize(
    ("full", "shown"), [("report.json", "report.json"), ("manifest.json@2", "manifest.json")]
)
def test_a_disk_full_at_the_very_end_is_one_line_and_the_outputs_stay(
    layout, full, shown, cli, tiny_clip, tmp_path
) -> None:
    """D26: ENOSPC writing report.json, or the manifest when the run ends (its second write),
    after the outputs are complete: one line naming the file and the full disk, exit 1; the
    outputs are whole, nothing partial is left, and the next run into the folder succeeds."""
    out = tmp_path / "out"
    _with_hook(cli, tmp_path, FULL_DISK_HOOK)
    cli.extra_env["VIDPIPE_TEST_FULL"] = full
    done = cli.run("run", tiny_clip, "--out", out, "--layout", layout, "--no-progress")
    assert done.returncode == 1, done.stderr
    line = _one_error_line(done.stderr)
    assert "no space left" in line and shown in line, line
    for name in ("compressed.mp4", "rendered.mp4"):
        assert (out / name).stat().st_size > 0
    assert not list(out.rglob("*.part")) and not list(out.rglob("*.tmp"))
    assert not list(out.rglob(".vidpipe-tmp-*"))
    del cli.extra_env["VIDPIPE_TEST_FULL"]
    again = cli.run("run", tiny_clip, "--out", out, "--layout", layout, "--no-progress")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "report.json").read_text())["tasks"]["render"]["frames"] == 12


# --- D16: a stage that ends its own process ----------------------------------------------

EXIT_STAGE = """
import os


def bye(frame, index, part=""):
    # Ends the process (no finally, no atexit) once the encoder has begun writing its
    # partial output, so that there is one to leave behind.
    if os.path.exists(part) and os.path.getsize(part) > 0:
        os._exit(0)
    return frame
"""


@pytest.mark.parametrize("layout", IN_PROCESS_LAYOUTS)
def test_after_a_stage_ends_the_process_no_child_lives_on_and_the_next_run_is_clean(
    layout, cli, make_clip, tmp_path
) -> None:
    """D16: `os._exit` in a stage under serial or threads ends vidpipe where it stands (exit 0:
    no code of vidpipe's runs again to say otherwise). No ffmpeg child outlives it (they die
    with the thread that started them, `cli.run` checks the run's whole tree), and the next
    run into the same folder, of another task, succeeds and leaves no partial or temporary
    file of the one before."""
    clip = make_clip("exit.mp4", size="160x120", frames=150, audio=True, gop=25)
    stage = tmp_path / "bye.py"
    stage.write_text(EXIT_STAGE)
    out = tmp_path / "out"
    part = out / ".compressed.mp4.vidpipe.part"
    done = cli.run(
        "run", clip, "--out", out, "--layout", layout, "--tasks", "compress", "--no-progress",
        "--stage", f'compress:{stage}:bye:part="{part}"', "--save-every", "10",
    )  # fmt: skip
    assert not (out / "compressed.mp4").exists(), "the stage never ended the process"
    assert done.returncode == 0, done.stderr  # the limitation: vidpipe cannot see os._exit
    assert part.exists()  # the killed run's partial output, as the issue saw it
    again = cli.run("run", clip, "--out", out, "--layout", layout, "--tasks", "render",
                    "--no-progress")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (out / "rendered.mp4").is_file()
    assert not list(out.rglob("*.part")) and not list(out.rglob("*.tmp"))
    assert not list(out.rglob(".vidpipe-tmp-*"))


# --- D25: the limit on processes and threads ---------------------------------------------

#: Loaded by every process of a run (sitecustomize): after VIDPIPE_TEST_NPROC starts of a
#: thread or a process, each process is refused every further one, as Linux refuses them when
#: RLIMIT_NPROC is reached (pthread_create, fork and clone fail with EAGAIN).
NPROC_HOOK = """
import errno, os, threading

_left = [int(os.environ.get("VIDPIPE_TEST_NPROC", "-1"))]
_lock = threading.Lock()


def _refused():
    with _lock:
        if _left[0] > 0:
            _left[0] -= 1
        return _left[0] == 0


def _eagain():
    return BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))


def _no_fork(real):
    def fork_exec(*args, **kwargs):
        if _refused():
            raise _eagain()
        return real(*args, **kwargs)

    return fork_exec


if _left[0] >= 0:
    import _posixsubprocess
    import subprocess

    _start = threading.Thread.start

    def _thread_start(self):
        if _refused():
            raise RuntimeError("can't start new thread")
        _start(self)

    threading.Thread.start = _thread_start
    _posixsubprocess.fork_exec = _no_fork(_posixsubprocess.fork_exec)
    subprocess._fork_exec = _no_fork(subprocess._fork_exec)
    os.fork = _no_fork(os.fork)
"""


def _assert_the_process_limit_is_named(  # type: ignore[no-untyped-def]
    done, out: Path, *, only_line: bool = True
) -> None:
    assert done.returncode == 1, done.stderr
    # OpenBLAS says so itself, at numpy's import, when it cannot start its threads (and goes
    # on with one): not vidpipe's to silence.
    ours = [line for line in done.stderr.splitlines() if not line.startswith("OpenBLAS")]
    line = _one_error_line("\n".join(ours if only_line else ours[-1:]))
    assert "could not start a process or thread: the limit on processes for this user" in line
    assert "ulimit -u" in line and ("Traceback" not in done.stderr or not only_line)
    assert not list(out.rglob("*.part")) and not list(out.rglob(".vidpipe-tmp-*"))


@pytest.mark.parametrize("layout", [*IN_PROCESS_LAYOUTS, *PROCESS_LAYOUTS])
@pytest.mark.parametrize("starts", [0, 3, 6])
def test_a_refused_process_or_thread_names_the_limit_on_processes(
    layout, starts, cli, tiny_clip, tmp_path
) -> None:
    """D25: wherever the limit on processes bites (the first ffmpeg, a task's thread or process,
    a pool worker, a worker's own threads), one line naming it, exit 1, nothing left behind
    (`cli.run` checks the run's whole tree)."""
    _with_hook(cli, tmp_path, NPROC_HOOK)
    cli.extra_env["VIDPIPE_TEST_NPROC"] = str(starts)
    out = tmp_path / "out"
    done = cli.run("run", tiny_clip, "--out", out, "--layout", layout, "--no-progress")
    _assert_the_process_limit_is_named(done, out)


def _few_processes(limit: int) -> Callable[[], None]:
    def limit_them() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))  # kept across setpriv

    return limit_them


@pytest.mark.parametrize("layout", ["serial", "processes", "pool", "segments"])
def test_the_real_limit_on_processes_is_named(layout, cli, tiny_clip, tmp_path) -> None:
    """D25 for real: as the unprivileged user `nobody` (root is not held to RLIMIT_NPROC), with
    `ulimit -u 12` counted over all of nobody's processes and threads, the run fails with the
    one line naming the limit. `setpriv` keeps the right to read and write files of root's
    (CAP_DAC_OVERRIDE), which does not lift the limit."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    import psutil
    from conftest import ROOT, assert_tree_gone

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv, to run as a user whose processes are counted")
    if any(
        p.info["uids"] and p.info["uids"].real == 65534 and p.info["status"] != "zombie"
        for p in psutil.process_iter(["uids", "status"])
    ):
        pytest.skip("nobody has processes of its own here: they would count against the limit")
    caps = "+dac_override,+dac_read_search"
    as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                 f"--inh-caps={caps}", f"--ambient-caps={caps}"]  # fmt: skip
    # vidpipe checks with access(2) that nobody may write there, which ignores capabilities:
    # a folder that nobody can reach, outside pytest's own (private) one.
    room = Path(tempfile.mkdtemp(prefix="nproc-test-"))
    try:
        room.chmod(0o777)
        shutil.copy(tiny_clip, room / "in.mp4")
        out = room / "out"
        done = subprocess.run(
            [*as_nobody, sys.executable, "-m", "pipeline", "run", str(room / "in.mp4"),
             "--out", str(out), "--layout", layout, "--no-progress"],
            capture_output=True, text=True, cwd=ROOT, timeout=100, env=cli.env(),
            preexec_fn=_few_processes(12),
        )  # fmt: skip
        if done.returncode != 0 and "setpriv:" in done.stderr:
            pytest.skip(f"setpriv cannot drop to nobody here: {done.stderr.strip()}")
        assert_tree_gone(cli.tag)
        # A spawned worker that fails while Python imports its modules, before vidpipe's code
        # runs in it, may print its own traceback first: the last line still names the limit.
        _assert_the_process_limit_is_named(done, out, only_line=False)
    finally:
        shutil.rmtree(room)


def test_check_stage_says_why_a_lambda_cannot_go_to_a_worker(cli, stage_file) -> None:
    """D19's neighbour: check-stage unpickles as a worker would, and says what to write."""
    done = cli.run("check-stage", f"{stage_file}:lam", timeout=300)
    assert "is a lambda" in done.stdout and "write it as a def" in done.stdout, done.stdout
    assert "cannot be copied for each thread" not in done.stdout  # threads share the function
    assert "Traceback" not in done.stderr
