"""Any name a file system allows works as an input, an output folder or a folder above them:
quotes, backslashes, tabs, newlines, colons and leading dashes included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

NAMES = [
    "it's out",
    'say "cheese"',
    "back\\slash",
    "tab\there",
    "new\nline",
    "take 1: final",
    "-dash",
]


def _run(cli, *args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def,type-arg]
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run", *map(str, args), "--no-progress"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env=cli.env(),
    )


def _digest(out: Path, task: str = "render") -> str:
    return str(json.loads((out / "report.json").read_text())["tasks"][task]["frame_digest"])


@pytest.fixture
def pieced_clip(make_clip):  # type: ignore[no-untyped-def]
    """300 frames with a keyframe every 30: cut into pieces by --segment-frames 60."""
    return make_clip("pieced.mp4", size="160x120", frames=300, gop=30, audio=True)


@pytest.fixture
def reference(pieced_clip, cli, tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("reference")
    assert (
        _run(cli, pieced_clip, "--out", out, "--tasks", "render", "--layout", "serial").returncode
        == 0
    )
    return _digest(out)


@pytest.mark.parametrize("name", NAMES, ids=repr)
def test_pieces_join_in_a_folder_of_any_name(name, pieced_clip, reference, cli, tmp_path) -> None:
    out = tmp_path / name / "out"
    for layout in ("serial", "segments"):
        done = _run(
            cli, pieced_clip, "--out", out, "--tasks", "render", "--layout", layout,
            "--segment-frames", "60", "--workers", "2",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert _digest(out) == reference


def test_resume_joins_in_a_folder_with_a_quote(pieced_clip, reference, cli, tmp_path) -> None:
    out = tmp_path / "bob's videos"
    args = [pieced_clip, "--out", out, "--tasks", "render", "--layout", "serial"]
    args += ["--segment-frames", "60"]
    failed = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", *map(str, args), "--no-progress"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**cli.env(), "VIDPIPE_FAULT": "stage:render:200:raise"},
        timeout=120,
    )
    assert failed.returncode == 1, failed.stderr
    done = _run(cli, *args, "--resume")
    assert done.returncode == 0, done.stderr
    assert _digest(out) == reference


@pytest.mark.parametrize(
    "name", ["it's.mp4", "take 1: final.mp4", "-dash.mp4", "new\nline.mp4"], ids=repr
)
def test_an_input_of_any_name_is_read(name, tiny_clip, cli, tmp_path) -> None:
    source = tmp_path / name
    source.write_bytes(tiny_clip.read_bytes())
    out = tmp_path / "out: 1"
    # Named relative to the current folder, as a user types them ("./" keeps "-dash.mp4" from
    # being read as an option by vidpipe's own parser).
    args = (f"./{name}", "--out", "out: 1", "--layout", "segments", "--workers", "2")
    done = _run(cli, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["tasks"]["compress"]["frames"] == 12 and report["tasks"]["render"]["audio"]
