"""Stages as plain Python: any class with `process(frame, index)`, or a function.

Each form, from a stage file (pickled as the file's source) or from a module, must give the
frames of the same stage written as a `Stage` subclass, under every layout, and show its name
in the report.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pipeline import RunOptions, run
from pipeline.config.settings import StageSpec
from pipeline.errors import ConfigError
from pipeline.stages.loader import build_stage, parse_stage_spec

LAYOUTS = ["serial", "threads", "processes", "hybrid", "pool", "segments", "ray"]

PLAIN_FILE = """
import numpy as np


class Invert:
    name = "file-invert"
    accepts = ("bgr24",)  # names, not PixelFormat: plain Python

    def __init__(self, mask=255):
        self.mask = mask

    def setup(self, spec):
        self._mask = np.uint8(self.mask)

    def process(self, frame, index):
        return np.bitwise_xor(frame, self._mask)


def invert(frame, index, mask=255):
    return np.bitwise_xor(frame, np.uint8(mask))


def trail(frame, index):
    return frame


trail.frame_independent = False
"""


@pytest.fixture(scope="module")
def stage_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stages") / "plain_fx.py"
    path.write_text(textwrap.dedent(PLAIN_FILE))
    return path


@pytest.fixture(scope="module")
def expected(make_clip, tmp_path_factory) -> str:
    """The serial frames of the same inversion written as a `Stage` subclass."""
    from conftest import TINY

    clip = make_clip("tiny.mp4", **TINY)
    out = tmp_path_factory.mktemp("reference")
    stage = (("compress", StageSpec("tests.stages_for_tests:Invert")),)
    report = run(clip, RunOptions(out_dir=out, layout="serial", tasks=("compress",), stages=stage))
    return report.tasks["compress"].frame_digest


def _run(cli, clip: Path, out: Path, layout: str, ref: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    done = cli.run(
        "run", clip, "--out", out, "--layout", layout, "--tasks", "compress", "--workers", "2",
        "--start-method", "spawn",  # workers load the stage from what was pickled
        "--stage", f"compress:{ref}", "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads((out / "report.json").read_text())["tasks"]["compress"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    ("name", "shown"), [("Invert", "file-invert(mask=255)"), ("invert", "invert")]
)
def test_a_plain_class_and_a_function_from_a_file_match_serial_under_every_layout(
    layout, name, shown, stage_file, cli, tiny_clip, tmp_path, expected
) -> None:
    if layout == "ray":
        pytest.importorskip("ray")
    task = _run(cli, tiny_clip, tmp_path, layout, f"{stage_file}:{name}")
    assert task["frame_digest"] == expected
    assert shown in task["stages"]


@pytest.mark.parametrize("layout", ["serial", "pool", "hybrid"])
@pytest.mark.parametrize(
    ("ref", "shown"),
    [
        ("tests.stages_for_tests:PlainInvert", "PlainInvert(mask=255)"),
        ("tests.stages_for_tests:plain_invert:mask=255", "plain_invert(mask=255)"),
    ],
)
def test_a_plain_class_and_a_function_from_a_module_match_serial(
    layout, ref, shown, cli, tiny_clip, tmp_path, expected
) -> None:
    task = _run(cli, tiny_clip, tmp_path, layout, ref)
    assert task["frame_digest"] == expected
    assert shown in task["stages"]


def test_attributes_and_the_frame_independent_keyword_are_read(stage_file) -> None:
    plain = build_stage(parse_stage_spec(f"{stage_file}:Invert"))
    assert {f.value for f in plain.accepts} == {"bgr24"}
    assert plain.frame_independent
    assert not build_stage(parse_stage_spec(f"{stage_file}:trail")).frame_independent
    keyword = build_stage(parse_stage_spec(f"{stage_file}:invert:frame_independent=false"))
    assert not keyword.frame_independent
    assert keyword.describe() == "invert"  # the keyword is the stage's, not the function's


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("json:JSONDecoder", "'JSONDecoder' is not a stage: a stage is a class with a process"),
        ("json:dumps:indent=2", "a stage function is called as f(frame, index, **options)"),
        ("tests.stages_for_tests:plain_invert:colour=1", "unexpected keyword argument 'colour'"),
        ("tests.stages_for_tests:plain_invert:frame_independent=2", "must be true or false"),
        ("tests.stages_for_tests:TWO_CORES", "has no class or function 'TWO_CORES'"),
    ],
)
def test_anything_else_is_one_error_saying_what_a_stage_must_have(ref, words) -> None:
    with pytest.raises(ConfigError) as caught:
        build_stage(parse_stage_spec(ref))
    assert words in str(caught.value)


def test_check_stage_checks_a_plain_function(cli, stage_file) -> None:
    done = cli.run("check-stage", f"{stage_file}:invert", "--json", "--frames", "6")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["picklable"] and report["thread_safe"]
    assert report["stage"] == "invert"


def test_the_documented_examples_do_what_they_say() -> None:
    import numpy as np

    from pipeline.stages.base import StreamSpec

    frame = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    negative = build_stage(parse_stage_spec("examples/stages/plain.py:Negative"))
    negative.setup(StreamSpec(6, 4, 25))
    assert np.array_equal(negative.process(frame.copy(), 0), np.bitwise_not(frame))
    vflip = build_stage(parse_stage_spec("examples/stages/plain.py:vflip"))
    assert np.array_equal(vflip.process(frame.copy(), 0), frame[::-1])
    assert (negative.name, vflip.name) == ("Negative", "vflip")
