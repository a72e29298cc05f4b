"""Segment-parallel runs: cuts at keyframes, exact frames, pieces joined and cleaned up."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from stages_for_tests import DieAt

from pipeline import EncoderSettings, RunOptions, WorkerCrashed, run
from pipeline.job import execute, plan
from pipeline.media import count_decoded_frames, probe
from pipeline.plan.pieces import plan_segments
from pipeline.plan.tasks import Task


def test_segments_start_at_keyframes_and_cover_every_frame(make_clip, tmp_path) -> None:
    clip = make_clip("gop.mp4", size="64x48", frames=40, gop=8, bframes=2)
    media = probe(clip)
    assert [k for k, _ in media.keyframes] == [0, 8, 16, 24, 32]
    segments = plan_segments(media, 3, tmp_path, "compress")
    assert [s.first_frame for s in segments] == [0, 16, 24]
    assert [s.frames for s in segments] == [16, 8, None]
    assert [s.seek for s in segments] == [None, Fraction(16, 25), Fraction(24, 25)]
    assert len({s.piece for s in segments}) == 3


def test_a_video_with_one_keyframe_is_one_segment(make_clip, tmp_path) -> None:
    clip = make_clip("onekey.mp4", size="64x48", frames=20)
    assert len(plan_segments(probe(clip), 4, tmp_path, "render")) == 1


def test_segments_join_pieces_into_the_serial_frames(make_clip, tmp_path) -> None:
    clip = make_clip("gop.mp4", size="64x48", frames=40, gop=8, bframes=2, audio=True)
    serial = run(clip, RunOptions(out_dir=tmp_path / "s", layout="serial"))
    out = tmp_path / "seg"
    report = run(clip, RunOptions(out_dir=out, layout="segments", workers=3, save_every=10))
    for name, task in report.tasks.items():
        assert task.frame_digest == serial.tasks[name].frame_digest
        assert [w.frames for w in task.workers] == [16, 8, 16]
        assert count_decoded_frames(out / task.output) == 40
        checkpoint = json.loads((out / f"{name}.checkpoint.json").read_text())
        assert checkpoint["complete"] and checkpoint["segments_done"] == [0, 1, 2]
        thumbs = sorted(p.name for p in (out / "thumbnails" / name).iterdir())
        assert thumbs == [f"frame_{i:06d}.jpg" for i in (0, 10, 20, 30)]
    assert probe(out / "compressed.mp4").audio_codec == "aac"
    assert not (out / ".vidpipe" / "pieces").exists(), "pieces are removed once joined"


@pytest.mark.timeout(60)
def test_a_killed_segment_worker_fails_the_run_and_keeps_only_recorded_pieces(
    make_clip, tmp_path
) -> None:
    clip = make_clip("gop.mp4", size="64x48", frames=40, gop=8, bframes=2)
    base = plan(clip, RunOptions(out_dir=tmp_path, layout="segments", workers=3))
    task = Task("doomed", (DieAt(20),), "doomed.mp4", EncoderSettings(), keep_audio=False)
    with pytest.raises(WorkerCrashed) as caught:
        execute(base.with_tasks(task))
    assert caught.value.task == "doomed" and "segment 1 worker" in str(caught.value)
    assert not (tmp_path / "doomed.mp4").exists()
    # What stays is what the checkpoint records as finished (for --resume): nothing partial.
    checkpoint = tmp_path / "doomed.checkpoint.json"
    recorded = json.loads(checkpoint.read_text())["segments_done"] if checkpoint.exists() else []
    assert 1 not in recorded
    folder = tmp_path / ".vidpipe" / "pieces" / "doomed"
    left = sorted(p.name for p in folder.glob("*")) if recorded else []
    assert left == sorted(f"{n:04d}{ext}" for n in recorded for ext in (".digests", ".mp4"))
    assert recorded or not (tmp_path / ".vidpipe" / "pieces").exists()
