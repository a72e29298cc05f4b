"""A resumed job is the same job: `--resume` continues only the work of the same input (by its
content, not only its size and time), the same stage code and settings, into outputs that are
still vidpipe's; and the job's identity is taken once, at start."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLE, Cli

# 40 frames, a keyframe every 5: pieces of 10 frames, so that a failed run leaves some done.
CLIP = {"size": "160x120", "frames": 40, "audio": True, "gop": 5, "bframes": 2}
JOB = ("--tasks", "compress", "--segment-frames", "10", "--save-every", "5", "--no-progress")
FAULT = "stage:compress:25:raise"
RESIZE = ("--height", "96")  # a stage, for the fault to stop

ADD = "import numpy as np\n\n\ndef add(frame, index):\n    return np.clip(frame.astype(np.int16) + {n}, 0, 255).astype(np.uint8)\n"  # noqa: E501
ADD_CLASS = (
    "import numpy as np\n\n\nclass Add:\n    def process(self, frame, index):\n"
    "        return np.clip(frame.astype(np.int16) + {n}, 0, 255).astype(np.uint8)\n"
)


def _fail_then(cli: Cli, *args: str | Path) -> None:
    """Run `args` with a stage failing at frame 25: pieces before it are recorded."""
    cli.extra_env["VIDPIPE_FAULT"] = FAULT
    try:
        failed = cli.run(*args)
    finally:
        del cli.extra_env["VIDPIPE_FAULT"]
    assert failed.returncode == 1 and "InjectedFault" in failed.stderr, failed.stderr


def _report(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((out / "report.json").read_text())


def _one_line_error(done: object) -> str:
    stderr: str = done.stderr  # type: ignore[attr-defined]
    assert done.returncode == 2, stderr  # type: ignore[attr-defined]
    assert stderr.startswith("error: ") and len(stderr.strip().splitlines()) == 1, stderr
    assert "unexpected" not in stderr and "Traceback" not in stderr
    return stderr


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("kind", "layout"),
    [("file-function", "serial"), ("file-class", "processes"), ("module-class", "serial")],
)
def test_resume_refuses_a_stage_whose_code_was_edited(kind, layout, cli, make_clip, tmp_path):  # type: ignore[no-untyped-def]
    clip, out = make_clip("identity.mp4", **CLIP), tmp_path / "out"
    if kind == "module-class":
        code, ref, name = tmp_path / "mystage.py", "mystage:Add", "mystage.py"
        cli.extra_env["PYTHONPATH"] = str(tmp_path)
    else:
        code, name = tmp_path / "add.py", "add.py"
        ref = f"{code}:{'add' if kind == 'file-function' else 'Add'}"
    text = ADD if kind == "file-function" else ADD_CLASS
    code.write_text(text.format(n=10))
    args = ("run", clip, "--out", out, "--layout", layout, "--stage", f"compress:{ref}", *JOB)
    _fail_then(cli, *args)

    code.write_text(text.format(n=60))  # the stage's code changed, its name and options did not
    stderr = _one_line_error(cli.run(*args, "--resume"))
    assert "--resume" in stderr and name in stderr and "without --resume" in stderr
    assert not (out / "compressed.mp4").exists()

    code.write_text(text.format(n=10))  # the same code again: the same job, resumed
    resumed = cli.run(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _report(out)["tasks"]["compress"]["resumed_frames"] > 0


def _same_size_and_time(path: Path, change: bytes) -> None:
    """Overwrite bytes inside `path`'s media data, keeping its size and modification time (as
    `cp -p` or `rsync -t` of another file of the same size would)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    at = data.index(b"mdat") + 200
    data[at : at + len(change)] = change
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


@pytest.mark.timeout(120)
def test_resume_refuses_an_input_replaced_with_the_same_size_and_time(cli, make_clip, tmp_path):  # type: ignore[no-untyped-def]
    clip = tmp_path / "in.mp4"
    shutil.copy(make_clip("identity.mp4", **CLIP), clip)
    out = tmp_path / "out"
    args = ("run", clip, "--out", out, "--layout", "serial", *JOB, *RESIZE)
    _fail_then(cli, *args)
    _same_size_and_time(clip, b"\x55" * 64)
    stderr = _one_line_error(cli.run(*args, "--resume"))
    assert str(clip) in stderr and "changed" in stderr and "without --resume" in stderr


@pytest.mark.timeout(120)
def test_a_finished_job_of_a_replaced_input_is_not_nothing_to_do(cli, make_clip, tmp_path):  # type: ignore[no-untyped-def]
    clip = tmp_path / "in.mp4"
    shutil.copy(make_clip("identity.mp4", **CLIP), clip)
    out = tmp_path / "out"
    args = ("run", clip, "--out", out, "--layout", "serial", *JOB)
    assert cli.run(*args).returncode == 0
    _same_size_and_time(clip, b"\x55" * 64)
    again = cli.run(*args, "--resume")
    assert "nothing to do" not in again.stdout
    assert str(clip) in _one_line_error(again)


def test_the_input_identity_follows_its_content_head_tail_and_size(tmp_path) -> None:
    from pipeline.plan.identity import input_identity

    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(16 << 20)  # 16 MiB: larger than what is hashed of it
    first = input_identity(big)
    for offset in (0, (16 << 20) - 1):
        with big.open("r+b") as f:
            f.seek(offset)
            f.write(b"x")
        assert input_identity(big)["input_content"] != first["input_content"]
    small = tmp_path / "small.bin"
    small.write_bytes(bytes(100_000))
    before = input_identity(small)
    _overwrite(small, 50_000)
    assert input_identity(small)["input_content"] != before["input_content"]


def _overwrite(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(b"y")


def test_the_input_identity_of_the_sample_has_its_size_and_a_content_digest() -> None:
    """The sample (2.8 MB) is hashed at its two ends only: about 7 ms, beside ~280 ms of probe."""
    from pipeline.plan.identity import input_identity

    identity = input_identity(SAMPLE)
    assert identity["input_bytes"] == SAMPLE.stat().st_size
    assert identity["input_content"].startswith("sha256:")


@pytest.mark.timeout(120)
def test_resume_over_a_finished_output_replaced_by_the_user_refuses_it(cli, make_clip, tmp_path):  # type: ignore[no-untyped-def]
    clip, out = make_clip("identity.mp4", **CLIP), tmp_path / "out"
    args = ("run", clip, "--out", out, "--layout", "serial", "--no-progress")
    assert cli.run(*args).returncode == 0
    rendered = (out / "rendered.mp4").stat().st_mtime_ns
    (out / "compressed.mp4").write_text("mine\n")

    again = cli.run(*args, "--resume")
    assert "nothing to do" not in again.stdout
    stderr = _one_line_error(again)
    assert "compressed.mp4" in stderr and "--force" in stderr
    assert (out / "compressed.mp4").read_text() == "mine\n"

    forced = cli.run(*args, "--resume", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (out / "compressed.mp4").read_bytes()[4:8] == b"ftyp"  # vidpipe's output again
    assert (out / "rendered.mp4").stat().st_mtime_ns == rendered  # the other task: not redone
    assert _report(out)["tasks"]["render"]["resumed_frames"] > 0


@pytest.mark.timeout(120)
def test_resume_remakes_a_finished_output_the_user_deleted(cli, make_clip, tmp_path):  # type: ignore[no-untyped-def]
    clip, out = make_clip("identity.mp4", **CLIP), tmp_path / "out"
    args = ("run", clip, "--out", out, "--layout", "serial", *JOB)
    assert cli.run(*args).returncode == 0
    (out / "compressed.mp4").unlink()
    again = cli.run(*args, "--resume")
    assert again.returncode == 0, again.stderr
    assert "nothing to do" not in again.stdout and (out / "compressed.mp4").is_file()


DELETE = (
    "import os\n\n\ndef gone(frame, index, path=''):\n"
    "    if index == 12 and os.path.exists(path):\n        os.remove(path)\n    return frame\n"
)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", ["serial", "processes", "segments"])
def test_an_input_deleted_mid_run_is_an_input_error(layout, cli, make_clip, tmp_path):  # type: ignore[no-untyped-def]
    clip = tmp_path / "del_in.mp4"
    shutil.copy(make_clip("identity.mp4", **CLIP), clip)
    stage = tmp_path / "rm.py"
    stage.write_text(DELETE)
    out = tmp_path / "out"
    done = cli.run(
        "run", clip, "--out", out, "--layout", layout, "--workers", "2", *JOB,
        "--stage", f'compress:{stage}:gone:path="{clip}"',
    )  # fmt: skip
    stderr = _one_line_error(done)
    assert str(clip) in stderr and "task 'compress'" in stderr
    assert not (out / "compressed.mp4").exists() and not list(out.rglob("*.part"))


@pytest.mark.timeout(180)
def test_resume_refuses_a_layout_files_stage_whose_code_was_edited(cli, make_clip, tmp_path):  # type: ignore[no-untyped-def]
    clip, out, code = make_clip("identity.mp4", **CLIP), tmp_path / "out", tmp_path / "add.py"
    code.write_text(ADD.format(n=10))
    layout = tmp_path / "lay.toml"
    layout.write_text(f'tasks = "serial"\n[task.compress]\nstages = ["{code}:add"]\n')
    args = ("run", clip, "--out", out, "--layout", layout, *JOB)
    _fail_then(cli, *args)
    code.write_text(ADD.format(n=60))
    stderr = _one_line_error(cli.run(*args, "--resume"))
    assert "add.py was edited" in stderr and "without --resume" in stderr


REPLACE = (
    "import os\n\n\ndef touch(frame, index, path=''):\n"
    "    if index == 12:\n        os.utime(path, ns=(0, 0))\n    return frame\n"
)


@pytest.mark.timeout(120)
def test_an_input_replaced_mid_run_is_refused_before_its_next_piece(cli, make_clip, tmp_path):  # type: ignore[no-untyped-def]
    clip = tmp_path / "in.mp4"
    shutil.copy(make_clip("identity.mp4", **CLIP), clip)
    stage, out = tmp_path / "touch.py", tmp_path / "out"
    stage.write_text(REPLACE)
    done = cli.run(
        "run", clip, "--out", out, "--layout", "serial", *JOB,
        "--stage", f'compress:{stage}:touch:path="{clip}"',
    )  # fmt: skip
    stderr = _one_line_error(done)
    assert f"task 'compress': the input {clip} was replaced during the run" in stderr
    assert not (out / "compressed.mp4").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", ["serial", "segments"])
def test_an_input_deleted_before_the_join_is_an_input_error(layout, cli, make_clip, tmp_path):  # type: ignore[no-untyped-def]
    """The join takes the audio from the input: gone by then, it is the input's fault."""
    clip = tmp_path / "del_in.mp4"
    shutil.copy(make_clip("identity.mp4", **CLIP), clip)
    stage, out = tmp_path / "rm.py", tmp_path / "out"
    stage.write_text(DELETE.replace("index == 12", "index == 35"))
    done = cli.run(
        "run", clip, "--out", out, "--layout", layout, "--workers", "2", *JOB,
        "--stage", f'compress:{stage}:gone:path="{clip}"',
    )  # fmt: skip
    stderr = _one_line_error(done)
    assert f"task 'compress': the input {clip} was removed during the run" in stderr
    assert not (out / "compressed.mp4").exists() and not list(out.rglob("*.part"))
