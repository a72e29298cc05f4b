"""Layout files (`--layout path/to/layout.toml`): every shipped example runs and produces the
frames of a serial run of the same stages; a bad file is one error line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import ROOT

from pipeline import RunOptions, run
from pipeline.config.layout_file import FramesPlan, Placement
from pipeline.config.options import apply_layout_file
from pipeline.stages.loader import parse_task_stage

EXAMPLES = sorted((ROOT / "examples" / "layouts").glob("*.toml"))


def _serial_twin(options: RunOptions) -> RunOptions:
    """The same job as `options`' layout file, every task and stage inline in one thread."""
    layout = apply_layout_file(options).layout_file
    assert layout is not None
    inline = dataclasses.replace(
        layout,
        tasks=Placement.SERIAL,
        frames=FramesPlan(),
        per_task=tuple((n, dataclasses.replace(t, frames=None)) for n, t in layout.per_task),
    )
    return dataclasses.replace(apply_layout_file(options), layout_file=inline)


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.timeout(120)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_layout_file_produces_the_serial_frames(
    example, cli, tiny_clip, tmp_path
) -> None:
    relative = example.relative_to(ROOT)
    out = tmp_path / "example"
    done = cli.run("run", tiny_clip, "--out", out, "--layout", relative, "--no-progress")
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["layout"] == str(relative)

    twin = run(tiny_clip, _serial_twin(RunOptions(out_dir=tmp_path / "twin", layout=str(example))))
    for name, task in report["tasks"].items():
        assert task["frame_digest"] == twin.tasks[name].frame_digest, name
        assert task["stages"] == twin.tasks[name].stages


def test_a_layout_file_places_tasks_and_pools_as_it_says(tiny_clip, tmp_path) -> None:
    layout = tmp_path / "mixed.toml"
    layout.write_text(
        'tasks = "threads"\nsave_queue = 2\n'
        '[task.render]\nframes = { pool = "threads", workers = 3, window = 5 }\n'
    )
    report = run(tiny_clip, RunOptions(out_dir=tmp_path / "out", layout=str(layout)))
    render, compress = report.tasks["render"], report.tasks["compress"]
    assert render.pid == compress.pid  # threads of one process
    assert len(render.workers) == 3 and not compress.workers  # a pool for render only
    assert {w.name.rsplit("_", 1)[0] for w in render.workers} == {"frames-render"}


def test_the_stage_chain_of_a_layout_file(tiny_clip, tmp_path) -> None:
    layout = tmp_path / "chain.toml"
    layout.write_text(
        'tasks = "serial"\n'
        "[task.compress]\n"
        'stages = [{ stage = "resize", height = 60 }, "tests.stages_for_tests:Invert"]\n'
        "[task.render]\nbuiltin_stages = false\n"
    )
    stage = parse_task_stage("compress:resize:height=40")
    report = run(
        tiny_clip, RunOptions(out_dir=tmp_path / "out", layout=str(layout), stages=(stage,))
    )
    assert report.tasks["compress"].stages == [
        "to-bgr",
        "resize(height=60)",
        "invert",
        "resize(height=40)",  # --stage comes after the layout file's stages
        "to-i420",
    ]
    assert report.tasks["render"].stages == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tasks = 'teleport'", "'tasks' must be one of serial, threads, processes, got 'teleport'"),
        ("colour = 'blue'", "unknown key 'colour'"),
        ("[frames]\npool = 'threads'\nworkers = 0", "[frames] 'workers' must be between 1 and"),
        ("[frames]\nwindow = 'big'", "[frames] 'window' must be a whole number, got 'big'"),
        ("[task.render]\nframes = { pool = 'gpu' }", "[task.render] frames: 'pool' must be one of"),
        ("[task.render]\nstages = [{ height = 3 }]", "a stage table needs 'stage'"),
        ("[task.render]\nstages = ['warp']", "'warp' is neither a built-in stage"),
        ("[task.render]\nstages = ['nowhere.py:X']", "stage file nowhere.py: no such file"),
        ("[task.upload]\nbuiltin_stages = false", "[task.upload] is not run"),
        ("tasks = ", "not valid TOML"),
    ],
)
def test_a_bad_layout_file_is_one_error_line(text, message, cli, tiny_clip, tmp_path: Path) -> None:
    layout = tmp_path / "bad.toml"
    layout.write_text(text + "\n")
    done = cli.run("run", tiny_clip, "--out", tmp_path / "out", "--layout", layout)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert message in lines[0], lines[0]
    assert not (tmp_path / "out" / "compressed.mp4").exists()


def test_a_missing_layout_file_is_one_error_line(cli, tiny_clip, tmp_path) -> None:
    done = cli.run("run", tiny_clip, "--out", tmp_path / "o", "--layout", "nowhere.toml")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: layout file nowhere.toml: cannot read it (No such file or directory)"
    )
