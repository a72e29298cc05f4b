"""A stage that breaks the protocol fails the run naming the stage and the frame: a frame that
is not of the spec the stage declared, or a stage that calls sys.exit()."""

from __future__ import annotations

import json
import re

import pytest


def _one_error_line(done, code: int) -> str:  # type: ignore[no-untyped-def]
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return str(lines[0])


WRONG_FRAMES = {
    "half": r"returned a uint8 array of shape \(60, 160, 3\)",
    "transposed": r"returned a uint8 array of shape \(160, 120, 3\)",
    "float32": r"returned a float32 array",
    "none": r"returned NoneType, not a frame",
    "two-d": r"returned a uint8 array of shape \(120, 160\)",
    "tiny": r"returned a uint8 array of shape \(10, 10, 3\)",
    "view": r"not C-contiguous",
}


@pytest.mark.parametrize("layout", ["serial", "pool"])
@pytest.mark.parametrize("kind", list(WRONG_FRAMES))
def test_a_frame_not_of_the_declared_spec_fails_naming_stage_and_frame(
    kind, layout, cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "out"
    done = cli.run(
        "run", tiny_clip, "--out", out, "--layout", layout, "--tasks", "compress",
        "--stage", f"compress:tests.stages_for_tests:Returns:kind={kind!r},at=3", "--no-progress",
    )  # fmt: skip
    line = _one_error_line(done, 1)
    failed = re.search(r"task 'compress': stage 'returns' failed on frame (\d+):", line)
    assert failed, line
    # Every frame from 3 on is wrong; a pool, which may hear of frame 4's failure first, still
    # names the earliest, as a run in order does.
    assert int(failed[1]) == 3, line
    assert re.search(WRONG_FRAMES[kind], line), line
    assert "expected a C-contiguous uint8 array of shape (120, 160, 3) (bgr24 160x120)" in line
    assert not (out / "compressed.mp4").exists() and not list(out.rglob("*.part"))
    assert not (out / "report.json").exists()


@pytest.mark.parametrize("layout", ["serial", "processes"])
@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("process", r"stage 'exits' failed on frame 2: SystemExit: 3"),
        ("setup", r"stage 'exits' failed: setup\(\) raised SystemExit\(3\)"),
        ("teardown", r"stage 'exits' failed: teardown\(\) raised SystemExit\(3\)"),
    ],
)
def test_a_stage_calling_sys_exit_is_a_stage_failure(
    where, message, layout, cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "out"
    done = cli.run(
        "run", tiny_clip, "--out", out, "--layout", layout,
        "--stage", f"render:tests.stages_for_tests:Exits:where={where!r}", "--no-progress",
    )  # fmt: skip
    line = _one_error_line(done, 1)
    assert re.search(rf"task 'render': {message}", line), line
    assert not (out / "rendered.mp4").exists() and not list(out.rglob("*.part"))


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
        (
            "import sys\nfrom pipeline.stages import Stage\n"
            "class Quits(Stage):\n"
            "    def __init__(self):\n        sys.exit(4)\n"
            "    def process(self, frame, index):\n        return frame\n",
            "building it raised SystemExit: 4",
        ),
    ],
)
def test_a_stage_file_calling_sys_exit_is_a_usage_error(
    source, words, cli, tiny_clip, tmp_path
) -> None:
    stage = tmp_path / "quits.py"
    stage.write_text(source)
    done = cli.run(
        "run", tiny_clip, "--out", tmp_path / "out", "--stage", f"render:{stage}:Quits",
    )  # fmt: skip
    line = _one_error_line(done, 2)
    assert words in line and "quits.py" in line


@pytest.mark.parametrize("layout", ["serial", "threads", "hybrid", "pool", "segments"])
def test_any_error_a_stage_raises_names_the_stage(layout, cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "out"
    done = cli.run(
        "run", tiny_clip, "--out", out, "--layout", layout, "--workers", "2",
        "--stage", "render:tests.stages_for_tests:RaisesBase:at=3", "--no-progress",
    )  # fmt: skip
    line = _one_error_line(done, 1)
    assert "stage 'raises-base' failed on frame 3: Abort: aborted at 3" in line
    assert not (out / "rendered.mp4").exists()


def test_generator_exit_in_teardown_fails_the_task_and_leaves_no_output(
    cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "out"
    done = cli.run(
        "run", tiny_clip, "--out", out, "--layout", "serial",
        "--stage", "render:tests.stages_for_tests:RaisesBase:where='teardown'",
    )  # fmt: skip
    line = _one_error_line(done, 1)
    assert "stage 'raises-base' failed: teardown() raised GeneratorExit" in line
    assert not (out / "rendered.mp4").exists()


def test_an_output_spec_that_is_not_a_spec_names_the_stage(cli, tiny_clip, tmp_path) -> None:
    done = cli.run(
        "run",
        tiny_clip,
        "--out",
        tmp_path / "out",
        "--stage",
        "render:tests.stages_for_tests:NoSpec",
    )
    line = _one_error_line(done, 2)
    assert "stage 'no-spec': output_spec() returned NoneType, not a StreamSpec" in line


def test_a_stage_that_needs_its_frames_in_order_is_never_cut(cli, tiny_clip, tmp_path) -> None:
    # The spec (pipeline/stages/base.py, "Frame independence"): such a stage sees every frame in
    # order, from the first, under every layout; `segments` makes its task in one piece.
    job = ("--tasks", "render", "--stage", "render:tests.stages_for_tests:Trail", "--workers", "2")
    digests = {}
    for layout in ("serial", "segments"):
        out = tmp_path / layout
        done = cli.run("run", tiny_clip, "--out", out, "--layout", layout, *job)
        assert done.returncode == 0, done.stderr
        render = json.loads((out / "report.json").read_text())["tasks"]["render"]
        digests[layout] = render["frame_digest"]
        if layout == "segments":  # tiny_clip has a keyframe every 4 frames: cuttable
            assert [w["name"] for w in render["workers"]] == ["segment-0"]
    assert digests["segments"] == digests["serial"]
