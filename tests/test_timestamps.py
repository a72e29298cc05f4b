"""Frames keep their presentation times: every output shows each frame when the input does.

A video that starts after its audio, and a variable-frame-rate video, must come out in sync
with the audio (copied from the input unchanged) under every layout, whether the frames go
through Python stages (render) or one ffmpeg transcodes them (compress), in one piece or in
pieces joined at the end. Times are read back with ffmpeg's `showinfo` filters.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from pipeline import RunOptions, run

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
TOLERANCE = 0.002  # seconds: encoders round times to their time base
LAYOUTS = ["serial", "threads", "processes", "hybrid", "pool", "segments"]


def _ffmpeg(*args: str | Path) -> None:
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *map(str, args)],
        check=True,
        timeout=60,
    )


def _times(path: Path, stream: str) -> list[float]:
    """Presentation times (seconds) of the frames of `path`'s first `stream` ("v" or "a")."""
    show = "showinfo" if stream == "v" else "ashowinfo"
    flag = "-vf" if stream == "v" else "-af"
    args = ["-i", path, "-map", f"0:{stream}:0", flag, show, "-f", "null", "-"]
    done = subprocess.run(
        [FFMPEG, "-hide_banner", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [float(t) for t in re.findall(r"pts_time:(-?[\d.]+)", done.stderr)]


def _close(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(
        abs(a - b) <= TOLERANCE for a, b in zip(got, want, strict=True)
    )


_VIDEO = "testsrc2=size=64x48:rate=25:duration=1.6"
_X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p"]


@pytest.fixture(scope="module")
def late_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 frames at 25 fps starting 1.0 s after the audio (which starts at 0)."""
    out = tmp_path_factory.mktemp("late") / "late.mp4"
    _ffmpeg(
        *("-itsoffset", "1", "-f", "lavfi", "-i", _VIDEO),
        *("-f", "lavfi", "-i", "sine=duration=3", "-map", "0:v", "-map", "1:a"),
        *_X264,
        *("-c:a", "aac", out),
    )
    return out


@pytest.fixture(scope="module")
def late_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 frames at 25 fps from 0, audio starting 0.5 s later (the video must not move)."""
    out = tmp_path_factory.mktemp("late_audio") / "late_audio.mp4"
    _ffmpeg(
        *("-f", "lavfi", "-i", _VIDEO, "-itsoffset", "0.5"),
        *("-f", "lavfi", "-i", "sine=duration=2", "-map", "0:v", "-map", "1:a"),
        *_X264,
        *("-c:a", "aac", out),
    )
    return out


@pytest.fixture(scope="module")
def trimmed_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cut without re-encoding 0.5 s in, between keyframes: an edit list hides the packets
    before 0.5 s (they decode, but are not shown)."""
    folder = tmp_path_factory.mktemp("trimmed")
    whole, out = folder / "whole.mp4", folder / "trimmed.mp4"
    _ffmpeg(
        *("-f", "lavfi", "-i", _VIDEO, "-f", "lavfi", "-i", "sine=duration=1.6"),
        *_X264,
        *("-c:a", "aac", whole),
    )
    _ffmpeg("-ss", "0.5", "-i", whole, "-c", "copy", out)
    return out


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 frames: the first 20 are 0.08 s apart, the rest 0.12 s; audio from 0."""
    out = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    retime = "setpts='if(lt(N,20),N*2,N*3-20)/25/TB'"
    _ffmpeg(
        *("-f", "lavfi", "-i", f"{_VIDEO},{retime}"),
        *("-f", "lavfi", "-i", "sine=duration=4", "-fps_mode", "vfr"),
        *_X264,
        *("-c:a", "aac", "-shortest", out),
    )
    return out


def _check_in_sync(clip: Path, out: Path, outputs: list[str]) -> None:
    video, audio = _times(clip, "v"), _times(clip, "a")
    for name in outputs:
        got = _times(out / name, "v")
        assert _close(got, video), f"{name}: frames at {got[:3]}..{got[-2:]}, input {video[:3]}"
        start = _times(out / name, "a")[0]
        assert abs(start - audio[0]) <= TOLERANCE, f"{name}: audio starts at {start}"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("clip", ["late_video", "late_audio", "vfr_video", "trimmed_video"])
def test_frames_keep_their_presentation_times(clip, layout, tmp_path, request) -> None:
    source: Path = request.getfixturevalue(clip)
    out = tmp_path / "out"
    run(source, RunOptions(out_dir=out, layout=layout, workers=2, save_every=1000))
    _check_in_sync(source, out, ["compressed.mp4", "rendered.mp4"])


@pytest.mark.timeout(240)
@pytest.mark.parametrize("clip", ["late_video", "vfr_video"])
def test_pieces_joined_keep_their_presentation_times(clip, tmp_path, request) -> None:
    """Encoded in pieces of 10 frames (cut at keyframes) and joined: every piece in place."""
    source: Path = request.getfixturevalue(clip)
    out = tmp_path / "out"
    run(source, RunOptions(out_dir=out, layout="serial", segment_frames=10, save_every=1000))
    _check_in_sync(source, out, ["compressed.mp4", "rendered.mp4"])


@pytest.mark.timeout(120)
def test_frames_an_edit_list_hides_are_not_frames(trimmed_video, tmp_path) -> None:
    """The hidden packets are neither counted nor shown: segments cut where serial does."""
    options = {"workers": 3, "save_every": 1000}
    serial = run(trimmed_video, RunOptions(out_dir=tmp_path / "a", layout="serial", **options))
    pieces = run(trimmed_video, RunOptions(out_dir=tmp_path / "b", layout="segments", **options))
    shown = len(_times(trimmed_video, "v"))
    for name, task in serial.tasks.items():
        assert task.frames == pieces.tasks[name].frames == shown
        assert pieces.tasks[name].frame_digest == task.frame_digest, name


@pytest.mark.timeout(120)
def test_constant_rate_input_keeps_its_times_and_digests(tiny_clip, tmp_path) -> None:
    """Ordinary input: frames at n / fps from 0, as before, and the same frames."""
    report = run(tiny_clip, RunOptions(out_dir=tmp_path / "a", layout="serial", save_every=1000))
    pieces = run(
        tiny_clip,
        RunOptions(out_dir=tmp_path / "b", layout="segments", workers=3, save_every=1000),
    )
    for name, task in report.tasks.items():
        assert pieces.tasks[name].frame_digest == task.frame_digest
        got = _times(tmp_path / "a" / task.output, "v")
        assert _close(got, [n / 25 for n in range(12)]), got


@pytest.mark.timeout(240)
@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="the ray extra is not installed"
)
@pytest.mark.parametrize("clip", ["late_video", "vfr_video"])
def test_ray_segments_keep_their_presentation_times(cli, clip, tmp_path, request) -> None:
    """Ray decodes cuts of the input (their own times start at 0): frames keep the input's."""
    source: Path = request.getfixturevalue(clip)
    out = tmp_path / "out"
    done = cli.run("run", source, "--out", out, "--layout", "ray", "--workers", "2", timeout=200)
    assert done.returncode == 0, done.stderr
    _check_in_sync(source, out, ["compressed.mp4", "rendered.mp4"])
