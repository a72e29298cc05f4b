"""Stages of one's own: `--stage TASK:STAGE`, from a file or a module, in every kind of worker;
`vidpipe stages`; one-line errors when a stage cannot be loaded."""

from __future__ import annotations

import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from pipeline import RunOptions, StageError, run
from pipeline.config.settings import StageSpec
from pipeline.errors import ConfigError
from pipeline.stages import BUILTIN_STAGES
from pipeline.stages.loader import build_stage, parse_stage_spec, parse_task_stage

SEPIA = "examples/stages/sepia.py:Sepia"


def _digest(out: Path, task: str = "compress") -> str:
    report = json.loads((out / "report.json").read_text())
    return str(report["tasks"][task]["frame_digest"])


def test_stages_lists_every_built_in_stage_with_one_line(cli) -> None:
    done = cli.run("stages")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(BUILTIN_STAGES)
    for line, cls in zip(lines, BUILTIN_STAGES.values(), strict=True):
        assert cls.summary() and cls.summary() in line


def test_stage_options_are_typed_values() -> None:
    spec = parse_stage_spec("animate:particles=40,glow=0,title=hello there,seed=7")
    assert spec == StageSpec(
        "animate", (("particles", 40), ("glow", 0), ("title", "hello there"), ("seed", 7))
    )
    assert parse_stage_spec("x.py:C:a=0.5,b=true,c=[1]").options == (
        ("a", 0.5),
        ("b", True),
        ("c", [1]),
    )
    with pytest.raises(ConfigError, match="options must be key=value"):
        parse_stage_spec('x.py:C:c="1,2"')  # commas separate options


def test_a_file_stage_pickles_as_its_source_and_loads_in_a_fresh_interpreter(tmp_path) -> None:
    stage = build_stage(parse_stage_spec(f"{SEPIA}:strength=0.25"))
    data = pickle.dumps(stage)
    # A fresh interpreter, elsewhere, cannot see the file: it must come with the pickle.
    code = (
        "import pickle, sys; s = pickle.loads(sys.stdin.buffer.read()); "
        "print(type(s).__name__, s.strength, s.describe())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["Sepia", "0.25", "sepia(strength=0.25)"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("layout", "start"),
    [("threads", "spawn"), ("pool", "spawn"), ("pool", "forkserver"), ("segments", "spawn")],
)
def test_a_file_stage_runs_in_every_kind_of_worker_with_the_serial_frames(
    layout, start, cli, tiny_clip, tmp_path
) -> None:
    stage = ("--tasks", "compress", "--stage", f"compress:{SEPIA}:strength=0.8", "--no-progress")
    serial = cli.run("run", tiny_clip, "--out", tmp_path / "serial", "--layout", "serial", *stage)
    assert serial.returncode == 0, serial.stderr
    out = tmp_path / layout
    done = cli.run(
        "run", tiny_clip, "--out", out, "--layout", layout, "--start-method", start, *stage
    )
    assert done.returncode == 0, done.stderr
    assert _digest(out) == _digest(tmp_path / "serial")
    report = json.loads((out / "report.json").read_text())
    # Sepia takes BGR only: frames become BGR just for it, and I420 again for the encoder.
    assert report["tasks"]["compress"]["stages"] == ["to-bgr", "sepia(strength=0.8)", "to-i420"]
    assert report["tasks"]["compress"]["decode_format"] == "yuv420p"


def test_stages_are_added_in_order_after_the_built_in_ones(tiny_clip, tmp_path) -> None:
    options = RunOptions(
        out_dir=tmp_path,
        layout="serial",
        tasks=("compress",),
        height=60,
        stages=(
            ("compress", StageSpec("tests.stages_for_tests:Invert")),
            parse_task_stage("compress:resize:height=40"),
        ),
    )
    report = run(tiny_clip, options)
    assert report.tasks["compress"].stages == [
        "to-bgr",
        "resize(height=60)",
        "invert",
        "resize(height=40)",
        "to-i420",
    ]
    assert report.tasks["compress"].height == 40


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ("compress:nowhere/missing.py:X", "stage file nowhere/missing.py: no such file"),
        (f"compress:{SEPIA[:-6]}:Nope", "examples/stages/sepia.py has no class or function 'Nope'"),
        (f"compress:{SEPIA[:-6]}:SEPIA_BGR", "'SEPIA_BGR' is not a stage"),
        ("compress:json:JSONDecoder", "'JSONDecoder' is not a stage"),
        ("compress:no_such_module:X", "stage module 'no_such_module': cannot import it"),
        (f"compress:{SEPIA}:bogus=1", "unexpected keyword argument 'bogus'"),
        (f"compress:{SEPIA}:strength=3", "strength must be between 0 and 1, got 3"),
        (f"compress:{SEPIA}:strength", "options must be key=value, got 'strength'"),
        ("compress:resize:height=abc", "height must be a whole number"),
        ("compress:warp", "'warp' is neither a built-in stage"),
        ("render:resize:height=40", "--stage: task 'render' is not run (--tasks compress)"),
        ("sepia", "expected TASK:STAGE"),
    ],
)
def test_a_stage_that_cannot_be_loaded_is_one_error_line(
    stage, message, cli, tiny_clip, tmp_path
) -> None:
    done = cli.run(
        "run", tiny_clip, "--out", tmp_path / "o", "--tasks", "compress", "--stage", stage
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "o" / "compressed.mp4").exists()


def test_a_broken_stage_file_names_the_file_and_line(tmp_path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("from pipeline.stages import Stage\n\nclass B(Stage):\n    def (\n")
    with pytest.raises(ConfigError, match=r"stage file .*broken.py, line 4: SyntaxError"):
        build_stage(parse_stage_spec(f"{broken}:B"))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("layout", ["pool", "segments", "ray"])
def test_a_stage_with_state_is_run_in_order_in_one_piece_under_every_layout(
    layout, cli, make_clip, tmp_path
) -> None:
    if layout == "ray" and importlib.util.find_spec("ray") is None:
        pytest.skip("the ray extra is not installed")
    clip = make_clip("gops.mp4", size="160x120", frames=40, gop=5)
    job = ("--tasks", "compress", "--stage", "compress:tests.stages_for_tests:Trail")
    job += ("--workers", "2", "--segment-frames", "10", "--no-progress")
    serial = cli.run("run", clip, "--out", tmp_path / "serial", "--layout", "serial", *job)
    assert serial.returncode == 0, serial.stderr
    done = cli.run("run", clip, "--out", tmp_path / layout, "--layout", layout, *job)
    assert done.returncode == 0, done.stderr
    assert _digest(tmp_path / layout) == _digest(tmp_path / "serial")
    checkpoint = json.loads((tmp_path / layout / "compress.checkpoint.json").read_text())
    assert len(checkpoint.get("segments", [[0, None]])) == 1  # made in one piece


def test_the_commands_in_the_stages_guide_run(cli, tiny_clip, tmp_path) -> None:
    guide = (ROOT / "docs" / "stages.md").read_text()
    commands = [line.split() for line in guide.splitlines() if line.startswith("vidpipe run ")]
    assert commands, "the guide shows how to run a stage"
    for n, words in enumerate(commands):
        words = [str(tiny_clip) if w.startswith("sample_media/") else w for w in words]
        words[words.index("--out") + 1] = str(tmp_path / f"out{n}")
        done = cli.run(*words[1:], "--no-progress")
        assert done.returncode == 0, (words, done.stderr)


@pytest.mark.parametrize("layout", ["serial", "processes", "pool", "segments"])
def test_a_stage_whose_teardown_fails_fails_the_run_naming_it(layout, tiny_clip, tmp_path) -> None:
    options = RunOptions(
        out_dir=tmp_path,
        layout=layout,
        tasks=("compress",),
        stages=(("compress", StageSpec("tests.stages_for_tests:FailTeardown")),),
    )
    with pytest.raises(StageError) as failed:
        run(tiny_clip, options)
    assert str(failed.value) == (
        "task 'compress': stage 'fail-teardown' failed: "
        "teardown() raised OSError('could not flush')"
    )
    assert not (tmp_path / "compressed.mp4").exists()
    assert not (tmp_path / ".vidpipe" / "pieces").exists()


def test_a_file_in_the_current_folder_does_not_shadow_a_package(tiny_clip, tmp_path) -> None:
    import subprocess
    import sys

    (tmp_path / "cv2.py").write_text("raise ImportError('the current folder shadowed cv2')\n")
    (tmp_path / "numpy.py").write_text("raise ImportError('the current folder shadowed numpy')\n")
    (tmp_path / "mystage.py").write_text(
        "from pipeline.stages import Stage\n\n"
        "class Mine(Stage):\n"
        "    def process(self, frame, index):\n"
        "        return frame\n"
    )
    vidpipe = Path(sys.executable).with_name("vidpipe")  # as a user runs it, not `python -m`
    for layout in ("serial", "processes"):
        done = subprocess.run(
            [vidpipe, "run", tiny_clip, "--out", tmp_path / layout, "--layout", layout,
             "--stage", "render:mystage:Mine", "--no-progress"],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
