"""Media handling: exact frame rates, odd sizes, decoded frame counts, pixel-format choice, and
one ffmpeg for a task whose frames no stage changes."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from pipeline import RunOptions, run
from pipeline.config.settings import StageSpec
from pipeline.media import count_decoded_frames, probe
from pipeline.media.ffmpeg import run_ffmpeg


@pytest.mark.parametrize("rate", ["30000/1001", "179/6", "25/2"])
def test_the_source_frame_rate_is_kept_exactly(rate, make_clip, tmp_path) -> None:
    clip = make_clip("rate.mp4", size="64x48", frames=8, fps=rate)
    assert probe(clip).fps == Fraction(rate)
    report = run(clip, RunOptions(out_dir=tmp_path, layout="serial", tasks=("compress",)))
    assert probe(tmp_path / "compressed.mp4").fps == Fraction(rate)
    assert Fraction(report.tasks["compress"].fps) == Fraction(rate)


def test_odd_sizes_are_cropped_to_even_and_the_report_says_so(make_clip, tmp_path) -> None:
    clip = make_clip("odd.mp4", size="161x121", frames=6, pix_fmt="yuv444p")
    report = run(clip, RunOptions(out_dir=tmp_path, layout="serial"))
    for name, task in report.tasks.items():
        assert (task.width, task.height) == (160, 120), name
        assert task.size_fix == ("cropped 161x121 to 160x120 (libx264 4:2:0 needs even dimensions)")
        out = probe(tmp_path / task.output)
        assert (out.width, out.height) == (160, 120)
        assert count_decoded_frames(tmp_path / task.output) == 6


def test_frames_are_counted_as_decoded(make_clip) -> None:
    clip = make_clip("count.mp4", size="64x48", frames=17)
    assert count_decoded_frames(clip) == 17


def test_frames_are_bgr_only_for_the_stages_that_need_it(tiny_clip, tmp_path) -> None:
    report = run(tiny_clip, RunOptions(out_dir=tmp_path, layout="serial"))
    assert report.tasks["compress"].decode_format == "yuv420p"
    assert report.tasks["compress"].stages == []  # no stage: no colour conversion at all
    assert report.tasks["render"].decode_format == "yuv420p"
    assert report.tasks["render"].stages[0] == "to-bgr"  # the animation draws in BGR
    assert report.tasks["render"].stages[-1] == "to-i420"  # the encoder takes I420
    resized = run(tiny_clip, RunOptions(out_dir=tmp_path / "r", layout="serial", height=60))
    assert resized.tasks["compress"].stages == ["to-bgr", "resize(height=60)", "to-i420"]


def _frames_and_audio(path) -> list[str]:
    """Every decoded video frame and every audio packet: timestamps, size and checksum."""
    listing = run_ffmpeg(
        ["-loglevel", "error", "-i", str(path), "-map", "0", "-c:a", "copy", "-f", "framecrc", "-"]
    ).stdout.decode()
    return [line for line in listing.splitlines() if not line.startswith("#")]


@pytest.mark.parametrize("layout", ["serial", "segments"])
def test_a_task_no_stage_changes_is_transcoded_by_one_ffmpeg_into_the_same_file(
    layout, make_clip, tmp_path
) -> None:
    clip = make_clip("direct.mp4", size="128x96", frames=40, fps="25/2", audio=True, gop=10)
    options = RunOptions(out_dir=tmp_path / "direct", layout=layout, tasks=("compress",))
    direct = run(clip, options)
    # The same task with a stage that returns every frame unchanged: decoder, Python, encoder.
    unchanged = ("compress", StageSpec("tests.stages_for_tests:Unchanged"))
    piped = run(clip, dataclasses.replace(options, out_dir=tmp_path / "piped", stages=(unchanged,)))

    roles = {p.role.split(":")[0] for p in direct.processes}
    assert "ffmpeg-transcode" in roles and not roles & {"ffmpeg-decode", "ffmpeg-encode"}
    assert {"ffmpeg-decode", "ffmpeg-encode"} <= {p.role.split(":")[0] for p in piped.processes}
    assert "transcode" in direct.tasks["compress"].timings
    assert direct.tasks["compress"].frames == piped.tasks["compress"].frames == 40
    assert direct.tasks["compress"].frame_digest == piped.tasks["compress"].frame_digest
    # The same frames at the same times, and the same audio. (Not quite the same bytes: the
    # transcoder keeps the input's colour tags in the stream header; raw frames cannot carry
    # them to an encoder.)
    listing = _frames_and_audio(tmp_path / "direct" / "compressed.mp4")
    assert listing == _frames_and_audio(tmp_path / "piped" / "compressed.mp4")
    assert sum(line.startswith("0,") for line in listing) == 40
    assert any(line.startswith("1,") for line in listing)  # the audio is there
    assert sorted(p.name for p in (tmp_path / "direct").glob("*.part")) == []
