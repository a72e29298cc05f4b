"""The command line: one-line errors with the right exit codes, probe, layouts, a full run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest

from pipeline.config.settings import thread_limit
from pipeline.layouts import LAYOUTS

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _bad_inputs(tmp: Path, good: Path) -> dict[str, Path]:
    (tmp / "a-directory").mkdir()
    (tmp / "empty.mp4").touch()
    (tmp / "text.mp4").write_text("this is not a video\n" * 20)
    _ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(tmp / "audio-only.mp4"))
    # An mp4 whose index (moov) is at the end, cut in half: the index is lost.
    _ffmpeg("-i", str(good), "-c", "copy", "-movflags", "-faststart", str(tmp / "full.mp4"))
    data = (tmp / "full.mp4").read_bytes()
    (tmp / "truncated.mp4").write_bytes(data[: len(data) // 2])
    return {
        "missing": tmp / "missing.mp4",
        "directory": tmp / "a-directory",
        "empty": tmp / "empty.mp4",
        "text": tmp / "text.mp4",
        "audio-only": tmp / "audio-only.mp4",
        "truncated": tmp / "truncated.mp4",
    }


BAD_INPUT_WORDS = {
    "missing": "no such file",
    "directory": "is a directory",
    "empty": "is empty",
    "text": "not a readable video",
    "audio-only": "no video stream",
    "truncated": "not a readable video",
}


def _assert_usage_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("case", list(BAD_INPUT_WORDS))
def test_bad_input_is_one_error_line_and_exit_2(case, cli, tmp_path, tiny_clip) -> None:
    path = _bad_inputs(tmp_path, tiny_clip)[case]
    out = tmp_path / "out"
    done = cli.run("run", path, "--out", out)
    _assert_usage_error(done, BAD_INPUT_WORDS[case], str(path))
    assert not out.exists(), "nothing is written for an input that cannot be used"


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--layout", "nonsense"], ["unknown layout 'nonsense'"]),
        (["--height", "-5"], ["--height"]),
        (["--height", "abc"], ["--height"]),
        (["--crf", "99"], ["--crf"]),
        (["--preset", "ludicrous"], ["--preset"]),
        (["--save-every", "0"], ["--save-every"]),
        (["--encoder-threads", "-1"], ["--encoder-threads"]),
        (["--particles", "-1"], ["--particles"]),
        (["--tasks", "compress,bogus"], ["unknown task 'bogus'"]),
        (["--start-method", "teleport"], ["--start-method"]),
        (["--ray-address", "127.0.0.1:6379"], ["--ray-address is for --layout ray"]),
        (["--layout", "ray", "--ray-address", "headnode"], ["--ray-address must be HOST:PORT"]),
    ],
)
def test_bad_option_is_one_error_line_and_exit_2(option, words, cli, tmp_path, tiny_clip) -> None:
    done = cli.run("run", tiny_clip, "--out", tmp_path / "out", *option)
    _assert_usage_error(done, *words)


LIMIT = thread_limit()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--opencv-threads", "100000"], [f"--opencv-threads must be between 0 and {LIMIT}"]),
        (["--encoder-threads", "100000"], [f"--encoder-threads must be at most {LIMIT}"]),
        (
            ["--workers", "1000000000", "--layout", "segments"],
            [f"--workers must be at most {LIMIT}"],
        ),
        (["--workers", "300", "--layout", "pool"], [f"--workers must be at most {LIMIT}"]),
        (["--workers", "100000"], [f"--workers must be at most {LIMIT}"]),
        (["--workers", "5000", "--layout", "ray"], ["--workers must be at most 4096"]),
        (["--height", "100000"], ["--height must be between 2 and 8192"]),
        (["--height", "8000"], ["its stages (resize) make frames of 10666x8000"]),
        (["--particles", "1000000000"], ["--particles must be between 0 and 100000"]),
        (["--samples", "1000000000"], ["--samples must be between 1 and 10000"]),
        (["--glow", "100000"], ["--glow must be between 0 and 100"]),
        (["--seed", "-1"], ["--seed must be 0 or more, got -1"]),
        (["--stall-timeout", "-1"], ["--stall-timeout must be 0 (never) or more seconds"]),
    ],
)
def test_options_beyond_what_makes_sense_are_refused_saying_the_limit(
    option, words, cli, tmp_path, tiny_clip
) -> None:
    done = cli.run("run", tiny_clip, "--out", tmp_path / "out", *option, timeout=20)
    _assert_usage_error(done, *words)
    assert not (tmp_path / "out").exists()


def test_a_layout_file_beyond_what_makes_sense_is_refused(cli, tmp_path, tiny_clip) -> None:
    layout = tmp_path / "big.toml"
    layout.write_text("[frames]\npool = 'threads'\nwindow = 1000000000\n")
    done = cli.run("run", tiny_clip, "--out", tmp_path / "out", "--layout", layout)
    _assert_usage_error(done, "'window' must be between 1 and", str(layout))


@pytest.mark.parametrize("size", ["1x1", "1x8", "9x1"])
def test_frames_too_small_to_encode_are_an_input_error(size, cli, tmp_path, make_clip) -> None:
    clip = make_clip(f"{size}.mkv", size=size, frames=3, codec="png", pix_fmt="rgb24")
    done = cli.run("run", clip, "--out", tmp_path / "out")
    _assert_usage_error(done, f"frames of {size} are too small to encode", str(clip))


def test_a_layout_file_that_is_not_text_names_the_file(cli, tmp_path, tiny_clip) -> None:
    layout = tmp_path / "binary.toml"
    layout.write_bytes(b"\xff\xfe\x00tasks = 1\n")
    done = cli.run("run", tiny_clip, "--out", tmp_path / "out", "--layout", layout)
    _assert_usage_error(done, str(layout), "not UTF-8")


@pytest.mark.parametrize("layout", ["processes", "pool", "segments"])
def test_a_stage_that_cannot_go_to_a_process_is_named(layout, cli, tmp_path, tiny_clip) -> None:
    done = cli.run(
        "run", tiny_clip, "--out", tmp_path / "out", "--layout", layout,
        "--stage", "render:tests.stages_for_tests:Unpicklable",
    )  # fmt: skip
    _assert_usage_error(
        done, "stage 'unpicklable' cannot be sent to a worker process", "cannot pickle"
    )
    forked = cli.run(
        "run", tiny_clip, "--out", tmp_path / "out", "--layout", layout, "--start-method",
        "fork", "--stage", "render:tests.stages_for_tests:Unpicklable",
    )  # fmt: skip
    assert forked.returncode == 0, forked.stderr  # a forked worker inherits it: nothing to send


def test_missing_arguments_are_usage_errors(cli) -> None:
    _assert_usage_error(cli.run("run"), "required")
    _assert_usage_error(cli.run("frobnicate"), "invalid choice")


def test_probe_prints_metadata_as_decoded(cli, tiny_clip) -> None:
    done = cli.run("probe", tiny_clip)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["frames_decoded"] == 12
    assert info["video"]["width"] == 160 and info["video"]["height"] == 120
    assert info["video"]["fps"] == "25/1"
    assert info["audio"] == {"codec": "aac"}
    fast = json.loads(cli.run("probe", tiny_clip, "--fast").stdout)
    assert "frames_decoded" not in fast and fast["video"]["packets"] == 12


def test_probe_of_bad_input_is_a_usage_error(cli, tmp_path) -> None:
    _assert_usage_error(cli.run("probe", tmp_path / "nope.mp4"), "no such file")


def test_layouts_lists_every_layout(cli) -> None:
    done = cli.run("layouts")
    assert done.returncode == 0
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert names == [*LAYOUTS, "FILE.toml"]


#: What printing a list must not load: a command that only prints starts in a blink.
HEAVY = ("cv2", "numpy", "matplotlib", "ray", "psutil", "tqdm")


@pytest.mark.parametrize("words", [["layouts"], ["stages"], ["workloads"], ["--help"]])
def test_the_listing_commands_load_no_heavy_library(words) -> None:
    # -X importtime writes every module imported, as it is, to stderr.
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pipeline", *words],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout, done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_planning_a_run_loads_neither_numpy_nor_opencv() -> None:
    # The first ffmpeg a run starts probes the input: it starts before the heavy imports.
    code = "import sys, pipeline.job; print(sorted({'numpy', 'cv2'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_run_writes_outputs_and_report(cli, tmp_path, tiny_clip) -> None:
    out = tmp_path / "out"
    done = cli.run("run", tiny_clip, "--out", out, "--height", "60", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "report:" in done.stdout and "compress" in done.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["layout"] == "processes"
    compress = report["tasks"]["compress"]
    assert (compress["width"], compress["height"]) == (80, 60)
    assert compress["stages"] == ["to-bgr", "resize(height=60)", "to-i420"]
    assert compress["input_bytes"] == tiny_clip.stat().st_size
    assert compress["output_bytes"] == (out / "compressed.mp4").stat().st_size
    assert done.stderr == "", "no progress bars when stderr is not a terminal"


def test_save_thread_failure_fails_the_run(cli, tmp_path, tiny_clip) -> None:
    out = tmp_path / "out"
    cli.extra_env["VIDPIPE_FAULT"] = "saver:compress:0:raise"
    done = cli.run("run", tiny_clip, "--out", out, "--layout", "threads")
    assert done.returncode == 1
    assert done.stderr.startswith("error: background save failed")
    assert not (out / "compressed.mp4").exists() and not list(out.glob("*.part"))


@pytest.mark.parametrize("where", ["thumbnails", "thumbnails/render"])
def test_a_file_where_a_folder_goes_is_refused_before_anything_is_written(
    where, cli, tmp_path, tiny_clip
) -> None:
    out = tmp_path / "out"
    (out / where).parent.mkdir(parents=True, exist_ok=True)
    (out / where).write_text("a file where vidpipe makes a folder")
    done = cli.run("run", tiny_clip, "--out", out, "--layout", "threads")
    _assert_usage_error(done, f"{out / where} is a file where vidpipe makes a folder")
    assert not (out / "compressed.mp4").exists() and not (out / ".vidpipe").exists()
    assert (out / where).read_text() == "a file where vidpipe makes a folder"


def test_damaged_input_is_processed_and_the_loss_reported(cli, tmp_path, make_clip) -> None:
    import random

    clip = tmp_path / "damaged.mp4"
    clip.write_bytes(make_clip("damage.mp4", size="160x120", frames=20).read_bytes())
    with clip.open("r+b") as f:
        f.seek(clip.stat().st_size // 2)
        f.write(random.Random(0).randbytes(2000))  # the same damage every time
    done = cli.run("run", clip, "--out", tmp_path / "out", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "could not be decoded (damaged input)" in done.stdout


def test_an_output_path_that_is_a_file_is_a_usage_error(cli, tmp_path, tiny_clip) -> None:
    out = tmp_path / "taken"
    out.write_text("not a directory")
    _assert_usage_error(cli.run("run", tiny_clip, "--out", out), "is not a directory")
    assert out.read_text() == "not a directory", "the file in the way is left alone"
