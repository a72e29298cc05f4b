"""`predict IN --from DIR` predicts only from a serial run of the same job: the report records
each task's job identity (`pipeline.plan.identity.job_key`: the input's content, the stages,
their code, the encoder's settings), and predict compares it with the job its options give,
naming what differs. Options that do not change the work (where and how it runs) are accepted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY, Cli, MakeClip

STAGE = "import numpy as np\n\n\ndef f(frame, index):\n    return np.clip(frame.astype(np.int16) + {n}, 0, 255).astype(np.uint8)\n"  # noqa: E501


def _one_line_error(done: Any) -> str:
    stderr: str = done.stderr
    assert done.returncode == 2, stderr
    assert stderr.startswith("error: ") and len(stderr.strip().splitlines()) == 1, stderr
    assert "unexpected" not in stderr and "Traceback" not in stderr
    return stderr


def _run(cli: Cli, clip: Path, out: Path, *args: str | Path) -> None:
    done = cli.run(
        "run", clip, "--out", out, "--layout", "serial", "--tasks", "compress", "--no-progress",
        *args,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def serial_run(make_clip: MakeClip, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A serial run of the tiny clip, compress only, with the default encoder settings and
    options that change where the work runs, not what it is."""
    out = tmp_path_factory.mktemp("same-job") / "S"
    _run(Cli(), make_clip("tiny.mp4", **TINY), out, "--workers", "3", "--stall-timeout", "30")
    return out


def _predict(cli: Cli, clip: Path, folder: Path, *args: str | Path) -> Any:
    return cli.run(
        "predict", clip, "--from", folder, "--tasks", "compress", "--cores", "2", "--json",
        *args, timeout=120,
    )  # fmt: skip


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--preset", "veryslow"], "preset was veryfast, these options give veryslow"),
        (["--crf", "30"], "crf was 23, these options give 30"),
        (["--height", "96"], "stages were"),
    ],
)
def test_predict_from_a_run_with_other_encoder_settings_is_refused_naming_them(
    cli: Cli, tiny_clip: Path, serial_run: Path, args: list[str], words: str
) -> None:
    message = _one_line_error(_predict(cli, tiny_clip, serial_run, *args))
    assert f"--from {serial_run}" in message and words in message, message


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--workers", "2"],
        ["--stall-timeout", "5", "--transport", "pickle", "--start-method", "spawn"],
        ["--preset", "veryfast", "--crf", "23"],  # the defaults, given explicitly
    ],
)
def test_predict_from_accepts_options_that_do_not_change_the_work(
    cli: Cli, tiny_clip: Path, serial_run: Path, args: list[str]
) -> None:
    done = _predict(cli, tiny_clip, serial_run, *args)
    assert done.returncode == 0, done.stderr
    report = json.loads((serial_run / "report.json").read_text())
    assert json.loads(done.stdout)["serial_wall_seconds"] == report["wall_seconds"]


@pytest.mark.timeout(180)
def test_predict_from_a_run_whose_stage_file_was_edited_is_refused_naming_it(
    cli: Cli, tiny_clip: Path, tmp_path: Path
) -> None:
    code, out = tmp_path / "pf.py", tmp_path / "sr2"
    code.write_text(STAGE.format(n=10))
    stage = ("--stage", f"compress:{code}:f")
    _run(cli, tiny_clip, out, *stage)
    code.write_text(STAGE.format(n=60))  # same name and options, other code
    message = _one_line_error(_predict(cli, tiny_clip, out, *stage))
    assert "pf.py was edited" in message and "stage 'f'" in message, message
    code.write_text(STAGE.format(n=10))  # the code of that run again: the same job
    done = _predict(cli, tiny_clip, out, *stage)
    assert done.returncode == 0, done.stderr


@pytest.mark.timeout(120)
def test_predict_from_a_run_of_a_same_looking_video_with_other_content_is_refused(
    cli: Cli, serial_run: Path, tmp_path: Path
) -> None:
    """Same size, duration, streams and keyframes (the probe agrees), other pixels."""
    recorded = json.loads((serial_run / "report.json").read_text())
    clip = tmp_path / "same-looking.mp4"
    data = bytearray(Path(recorded["input"]["path"]).read_bytes())
    at = data.index(b"mdat") + 200
    data[at : at + 64] = b"\x55" * 64
    clip.write_bytes(bytes(data))
    message = _one_line_error(_predict(cli, clip, serial_run))
    assert "input" in message and str(clip) in message, message


@pytest.mark.timeout(120)
def test_predict_from_a_report_recording_no_job_is_refused(
    cli: Cli, tiny_clip: Path, serial_run: Path, tmp_path: Path
) -> None:
    """A report.json of an older vidpipe, which did not record the job: nothing says it was
    the same work."""
    report = json.loads((serial_run / "report.json").read_text())
    del report["tasks"]["compress"]["job"]
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps(report))
    message = _one_line_error(_predict(cli, tiny_clip, folder))
    assert "records no job" in message and "run the job again" in message, message


@pytest.mark.timeout(60)
def test_report_records_each_tasks_job_identity(serial_run: Path) -> None:
    job = json.loads((serial_run / "report.json").read_text())["tasks"]["compress"]["job"]
    assert job["encoder"] == ["veryfast", 23] and job["input_content"].startswith("sha256:")
    assert job["stages"] == [] and job["output"] == "compressed.mp4"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("cores", ["1,1", "2,4,2"])
def test_predict_refuses_a_core_count_named_twice(cli: Cli, tiny_clip: Path, cores: str) -> None:
    done = cli.run("predict", tiny_clip, "--cores", cores)
    assert "is named twice" in _one_line_error(done)


@pytest.mark.timeout(180)
def test_resume_names_the_encoder_setting_that_changed(
    cli: Cli, make_clip: MakeClip, tmp_path: Path
) -> None:
    """The same words, from the same mechanism, for `--resume` of another job's checkpoint."""
    clip = tmp_path / "in.mp4"
    shutil.copy(make_clip("identity.mp4", size="160x120", frames=40, gop=5), clip)
    out = tmp_path / "out"
    args = ("run", clip, "--out", out, "--layout", "serial", "--tasks", "compress",
            "--segment-frames", "10", "--height", "96", "--no-progress")  # fmt: skip
    cli.extra_env["VIDPIPE_FAULT"] = "stage:compress:25:raise"
    try:
        assert cli.run(*args).returncode == 1
    finally:
        del cli.extra_env["VIDPIPE_FAULT"]
    message = _one_line_error(cli.run(*args, "--resume", "--crf", "30"))
    assert "crf was 23, these options give 30" in message, message


@pytest.mark.timeout(180)
def test_predict_from_names_the_stage_option_that_differs(
    cli: Cli, tiny_clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "R"
    done = cli.run("run", tiny_clip, "--out", out, "--layout", "serial", "--tasks", "render",
                   "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = cli.run("predict", tiny_clip, "--from", out, "--tasks", "render", "--seed", "3")
    message = _one_line_error(done)
    assert "its stage was animate(" in message and "seed=0" in message, message
    assert "these options give animate(" in message and "seed=3" in message, message


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("job", "words"),
    [(5, "is not a vidpipe report"), ({}, "recorded by another version of vidpipe")],
)
def test_predict_from_a_report_with_a_malformed_job_is_refused(
    cli: Cli, tiny_clip: Path, serial_run: Path, tmp_path: Path, job: Any, words: str
) -> None:
    report = json.loads((serial_run / "report.json").read_text())
    report["tasks"]["compress"]["job"] = job
    folder = tmp_path / "R"
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps(report))
    assert words in _one_line_error(_predict(cli, tiny_clip, folder))
