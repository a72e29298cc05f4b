"""`vidpipe run --resume`: an interrupted, failed or killed run continues after its last finished
piece, and ends with the same frames as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import assert_only_recorded_pieces, assert_tree_gone

from pipeline.media.probe import count_decoded_frames, probe
from pipeline.plan.pieces import plan_pieces

LAYOUTS = ["serial", "threads", "processes", "hybrid", "pool", "segments"]
# 8 pieces of 15 frames when cut every 15 (a keyframe every 5 frames).
CLIP = {"size": "160x120", "frames": 120, "audio": True, "gop": 5, "bframes": 2}
JOB = ("--segment-frames", "15", "--workers", "2", "--save-every", "10", "--no-progress")


def _digests(out: Path) -> dict[str, str]:
    report = json.loads((out / "report.json").read_text())
    return {name: task["frame_digest"] for name, task in report["tasks"].items()}


def _report(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((out / "report.json").read_text())


def _checkpoint(out: Path, task: str) -> dict:  # type: ignore[type-arg]
    return json.loads((out / f"{task}.checkpoint.json").read_text())


@pytest.fixture
def reference(cli, make_clip, tmp_path_factory) -> tuple[Path, dict[str, str]]:  # type: ignore[no-untyped-def]
    """The clip, and the frame digests of an uninterrupted serial run of it."""
    clip = make_clip("resume.mp4", **CLIP)
    out = tmp_path_factory.mktemp("reference")
    done = cli.run("run", clip, "--out", out, "--layout", "serial", *JOB)
    assert done.returncode == 0, done.stderr
    return clip, _digests(out)


def test_pieces_are_cut_at_keyframes_at_least_n_frames_apart(make_clip, tmp_path) -> None:
    media = probe(make_clip("resume.mp4", **CLIP))
    pieces = plan_pieces(media, 15, tmp_path, "render")
    assert [(s.first_frame, s.frames) for s in pieces] == [
        (0, 15), (15, 15), (30, 15), (45, 15), (60, 15), (75, 15), (90, 15), (105, None)
    ]  # fmt: skip
    assert [(s.first_frame, s.frames) for s in plan_pieces(media, 12, tmp_path, "r")][:2] == [
        (0, 15),
        (15, 15),
    ]
    assert len(plan_pieces(media, 0, tmp_path, "render")) == 1
    assert len(plan_pieces(media, 1000, tmp_path, "render")) == 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("layout", "start"),
    [(layout, "spawn") for layout in LAYOUTS] + [("processes", "fork"), ("segments", "fork")],
)
def test_a_failed_run_resumes_to_the_uninterrupted_frames(
    layout, start, cli, reference, tmp_path
) -> None:
    clip, expected = reference
    out = tmp_path / "out"
    layout_args = ("--layout", layout, "--start-method", start)
    os.environ["VIDPIPE_FAULT"] = "stage:render:70:raise"
    try:
        failed = cli.run("run", clip, "--out", out, *layout_args, *JOB)
    finally:
        del os.environ["VIDPIPE_FAULT"]
    assert failed.returncode == 1 and "InjectedFault" in failed.stderr
    assert_only_recorded_pieces(out)
    done_before = _checkpoint(out, "render")["segments_done"]
    assert done_before, "no piece of render was recorded before the fault"
    assert not (out / "rendered.mp4").exists()

    resumed = cli.run("run", clip, "--out", out, *layout_args, *JOB, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resume: render: resuming after" in resumed.stdout
    assert _digests(out) == expected
    report = _report(out)
    assert 0 < report["tasks"]["render"]["resumed_frames"] < 120
    assert report["tasks"]["render"]["frames"] == 120
    assert report["tasks"]["render"]["thumbnails"] == 12
    assert count_decoded_frames(out / "rendered.mp4") == 120
    assert probe(out / "compressed.mp4").audio_codec == "aac"
    assert not (out / ".vidpipe" / "pieces").exists() and not list(out.rglob("*.part"))
    assert _checkpoint(out, "render")["complete"]


@pytest.mark.timeout(120)
def test_resuming_a_finished_job_does_nothing_and_says_so(cli, reference, tmp_path) -> None:
    clip, _ = reference
    out = tmp_path / "out"
    assert cli.run("run", clip, "--out", out, *JOB).returncode == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = cli.run("run", clip, "--out", out, *JOB, "--resume")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"nothing to do: {out} already holds this finished job")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_an_interrupted_run_resumes_under_another_layout(how, cli, reference, tmp_path) -> None:
    clip, _ = reference
    out = tmp_path / "out"
    slow = ("--particles", "4000")  # more work per frame: time to interrupt the run
    serial = cli.run("run", clip, "--out", tmp_path / "serial", "--layout", "serial", *JOB, *slow)
    assert serial.returncode == 0, serial.stderr
    expected = _digests(tmp_path / "serial")
    proc = cli.start("run", clip, "--out", out, "--layout", "segments", *JOB, *slow)
    deadline = time.monotonic() + 60
    checkpoint = out / "render.checkpoint.json"
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.exists() and _checkpoint(out, "render").get("segments_done"):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    if how == "SIGKILL":
        os.killpg(proc.pid, signal.SIGKILL)  # the whole job dies: no cleanup at all
    else:
        proc.send_signal(getattr(signal, how))
    proc.communicate(timeout=10)
    assert proc.returncode == {"SIGINT": 130, "SIGTERM": 143, "SIGKILL": -9}[how]
    assert_tree_gone(cli.tag)
    assert not (out / "rendered.mp4").exists()
    if how != "SIGKILL":
        assert_only_recorded_pieces(out)

    resumed = cli.run("run", clip, "--out", out, "--layout", "processes", *JOB, *slow, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _digests(out) == expected
    assert _report(out)["tasks"]["render"]["resumed_frames"] > 0
    assert not (out / ".vidpipe" / "pieces").exists() and not list(out.rglob("*.part"))


def test_resume_refuses_another_jobs_checkpoint(cli, reference, tmp_path) -> None:
    clip, _ = reference
    out = tmp_path / "out"
    assert cli.run("run", clip, "--out", out, *JOB).returncode == 0
    other = cli.run("run", clip, "--out", out, *JOB, "--resume", "--crf", "30")
    assert other.returncode == 2
    assert other.stderr.startswith("error: --resume: ") and "belongs to another job" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


def test_resume_with_nothing_to_resume_starts_from_the_beginning(cli, reference, tmp_path) -> None:
    clip, expected = reference
    out = tmp_path / "out"
    done = cli.run("run", clip, "--out", out, *JOB, "--resume")
    assert done.returncode == 0, done.stderr
    assert "resume: render: nothing to resume, starting from the beginning" in done.stdout
    assert _digests(out) == expected
    assert _report(out)["tasks"]["render"]["resumed_frames"] == 0


def test_a_run_without_resume_starts_over(cli, reference, tmp_path) -> None:
    clip, expected = reference
    out = tmp_path / "out"
    os.environ["VIDPIPE_FAULT"] = "stage:render:70:raise"
    try:
        assert cli.run("run", clip, "--out", out, "--layout", "serial", *JOB).returncode == 1
    finally:
        del os.environ["VIDPIPE_FAULT"]
    assert (out / ".vidpipe" / "pieces" / "render").is_dir()
    again = cli.run("run", clip, "--out", out, "--layout", "serial", *JOB)
    assert again.returncode == 0, again.stderr
    assert _digests(out) == expected
    assert _report(out)["tasks"]["render"]["resumed_frames"] == 0
    assert not (out / ".vidpipe" / "pieces").exists()


def _break(state: dict, how: str) -> object:  # type: ignore[type-arg]
    if how == "done as strings":
        state["segments_done"] = [str(n) for n in state["segments_done"]]
    elif how == "segments a number":
        state["segments"] = 5
    elif how == "a list as the root":
        return [state]
    elif how == "result missing fields":
        state["result"] = {"frames": 120}
    elif how == "result of wrong types":
        state["result"]["frames"] = "many"
    elif how == "job not an object":
        state["job"] = "mine"
    return state


@pytest.mark.parametrize(
    "how",
    [
        "done as strings",
        "segments a number",
        "a list as the root",
        "result missing fields",
        "result of wrong types",
        "job not an object",
        "not JSON",
        "not text",
    ],
)
def test_a_malformed_checkpoint_is_refused_in_one_line(how, cli, reference, tmp_path) -> None:
    clip, _ = reference
    out = tmp_path / "out"
    finished = how.startswith("result")
    env = {} if finished else {"VIDPIPE_FAULT": "stage:render:70:raise"}
    cli.extra_env.update(env)
    first = cli.run("run", clip, "--out", out, "--layout", "serial", *JOB)
    assert first.returncode == (0 if finished else 1), first.stderr
    cli.extra_env.clear()
    path = out / "render.checkpoint.json"
    if how == "not JSON":
        path.write_text("{")
    elif how == "not text":
        path.write_bytes(b"\xff\xfe{}")
    else:
        path.write_text(json.dumps(_break(_checkpoint(out, "render"), how)))
    done = cli.run("run", clip, "--out", out, "--layout", "serial", *JOB, "--resume")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: --resume: cannot read checkpoint {path}"
    )
