"""What `compare` and `predict` are pointed at: layout names and files, odd input names, and
`predict --from`'s report. Run folders stay in `OUT/runs/`; every bad input is refused in one
line, at once, naming whose it is."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, TINY, Cli, MakeClip

LAYOUT_FILE = 'tasks = "serial"\n'
PNG = b"\x89PNG\r\n\x1a\n"
CHARTS = ("speedup.png", "timeline.png")


def _env(cli: Cli) -> dict[str, str]:
    """`cli`'s environment for a run in another folder: this tree's `pipeline` all the same."""
    return {**cli.env(), "PYTHONPATH": str(ROOT)}


def _one_line_error(done: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "unexpected" not in done.stderr
    return done.stderr


# --- D2: run folders inside OUT/runs/, named from the layout, never from a path ------------


@pytest.mark.timeout(120)
def test_compare_run_folders_sit_in_runs_named_from_the_layout(
    cli: Cli, tiny_clip: Path, tmp_path: Path
) -> None:
    mine, work = tmp_path / "mine", tmp_path / "work"
    mine.mkdir(), work.mkdir()
    for folder, name in [
        (mine, "lay.toml"),  # absolute
        (tmp_path, "lay.toml"),  # ../lay.toml: the same name as the one above
        (work, "-odd name.toml"),
        (work, ".hidden.toml"),
        (work, "serial.toml"),  # the name of a registered layout
    ]:
        (folder / name).write_text(LAYOUT_FILE)
    user = mine / "lay.toml-1" / "report.json"  # where the runs used to go
    user.parent.mkdir()
    user.write_text("my notes")
    layouts = f"{mine / 'lay.toml'},../lay.toml,./-odd name.toml,.hidden.toml,serial.toml"
    out = tmp_path / "cmp"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "compare", str(tiny_clip), "--layouts", layouts,
         "--repeat", "1", "--out", str(out), "--tasks", "compress", "--force"],
        capture_output=True, text=True, cwd=work, env=_env(cli), timeout=110,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert user.read_text() == "my notes", "nothing is written beside a layout file"
    assert sorted(p.name for p in mine.iterdir()) == ["lay.toml", "lay.toml-1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp", "lay.toml", "mine", "work"]
    results = json.loads((out / "results.json").read_text())
    folders = [Path(r["out_dir"]) for r in results["runs"]]
    assert len(folders) == 6 and len(set(folders)) == 6, folders
    assert all(f.parent == out / "runs" for f in folders), folders
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*-1", f.name) for f in folders), folders
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(f.name for f in folders)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".vidpipe", "results.json", "results.md", "runs", *CHARTS]
    )
    assert all((f / "report.json").is_file() for f in folders)
    assert "1 run per layout," in done.stdout  # C1: singular


# --- C1: a layout named twice, or none, is refused -------------------------------------------


@pytest.mark.parametrize("command", ["compare", "predict"])
@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("serial,threads,threads", "layout 'threads' is named twice"),
        ("serial,serial", "layout 'serial' is named twice"),
        ("lay.toml,./lay.toml", "is named twice"),
        ("", "no layout named"),
        (",,", "no layout named"),
        ("threads,,pool", "an empty layout name"),
    ],
)
def test_layouts_named_twice_or_not_at_all_are_refused(
    cli: Cli, tiny_clip: Path, tmp_path: Path, command: str, value: str, words: str
) -> None:
    (tmp_path / "lay.toml").write_text(LAYOUT_FILE)
    fast = ["--tasks", "compress", *(["--repeat", "1"] if command == "compare" else [])]
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", command, str(tiny_clip), "--layouts", value, *fast],
        capture_output=True, text=True, cwd=tmp_path, env=_env(cli), timeout=60,
    )  # fmt: skip
    assert words in _one_line_error(done)
    assert not (tmp_path / "compare_out").exists(), "refused before anything ran"


# --- D20: an input whose name is not UTF-8 ---------------------------------------------------


@pytest.mark.timeout(120)
def test_compare_takes_names_that_are_not_utf8(cli: Cli, tiny_clip: Path, tmp_path: Path) -> None:
    """The input's, a layout file's and --out's: all kept as their bytes, charts drawn."""
    clip = tmp_path / os.fsdecode(b"bad\xffname.mp4")
    clip.write_bytes(tiny_clip.read_bytes())
    layout = tmp_path / os.fsdecode(b"l\xffay.toml")
    layout.write_text(LAYOUT_FILE)
    out = tmp_path / os.fsdecode(b"c\xffmp")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "compare", clip, "--layouts", f"threads,{layout}",
         "--repeat", "1", "--out", out, "--tasks", "compress"],
        capture_output=True, env=_env(cli), timeout=110,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"bad\xffname.mp4" in done.stdout  # the table's title, as the name's bytes
    results = json.loads((out / "results.json").read_text())
    assert results["input"] == str(clip) and results["frames_match_serial"] is True
    assert results["layouts"] == ["serial", "threads", str(layout)]
    assert (out / "results.md").read_bytes().startswith(b"# Layouts compared on `bad\xffname")
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["l_ay-1", "serial-1", "threads-1"]
    assert all((out / chart).read_bytes().startswith(PNG) for chart in CHARTS)


@pytest.mark.timeout(60)
def test_compare_names_a_failing_run_whose_message_is_not_utf8(
    cli: Cli, tiny_clip: Path, tmp_path: Path
) -> None:
    bad = tmp_path / os.fsdecode(b"st\xff.py")
    bad.write_text("class S:\n    def process(self, f, i):\n        raise ValueError('no')\n")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "compare", tiny_clip, "--layouts", "threads",
         "--repeat", "1", "--out", tmp_path / "cmp", "--tasks", "compress",
         "--stage", f"compress:{bad}:S"],
        capture_output=True, env=_env(cli), timeout=50,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(b"error: layout 'serial' failed: ") and b"Traceback" not in (
        done.stderr
    )


# --- D6: a FIFO where a file is read never blocks ---------------------------------------------


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


@pytest.mark.timeout(60)
def test_predict_from_a_fifo_report_is_refused_at_once(
    cli: Cli, tiny_clip: Path, tmp_path: Path
) -> None:
    _fifo(tmp_path / "F" / "report.json")
    done = cli.run("predict", tiny_clip, "--from", tmp_path / "F", timeout=30)
    assert "not a regular file" in _one_line_error(done)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "args",
    [
        ["compare", "{clip}", "--layouts", "{fifo}.toml", "--out", "{tmp}/cmp"],
        ["predict", "{clip}", "--layouts", "{fifo}.toml"],
        ["predict", "{fifo}.mp4"],
        ["compare", "{fifo}.mp4", "--out", "{tmp}/cmp"],
        ["check-stage", "{fifo}.py:S"],
        ["run", "{clip}", "--out", "{tmp}/o", "--stage", "compress:{fifo}.py:S"],
    ],
    ids=["compare-layout", "predict-layout", "predict-input", "compare-input", "check-stage",
         "run-stage"],
)  # fmt: skip
def test_every_file_a_user_points_at_is_refused_at_once_when_a_fifo(
    cli: Cli, tiny_clip: Path, tmp_path: Path, args: list[str]
) -> None:
    ext = next(a for a in args if "{fifo}" in a).rpartition(".")[2].partition(":")[0]
    fifo = _fifo(tmp_path / f"f.{ext}")
    given = [a.format(clip=tiny_clip, fifo=fifo.with_suffix(""), tmp=tmp_path) for a in args]
    done = cli.run(*given, timeout=30)
    assert str(fifo) in _one_line_error(done)


# --- D10 and D27: predict --from a report of another input, or not a report at all -----------


@pytest.fixture(scope="module")
def serial_run(make_clip: MakeClip, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A serial run of the tiny clip, compress only."""
    out = tmp_path_factory.mktemp("serial") / "S"
    done = Cli().run(
        "run", make_clip("tiny.mp4", **TINY), "--out", out, "--layout", "serial",
        "--tasks", "compress", "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.timeout(60)
def test_predict_from_a_run_of_another_input_is_refused_naming_both(
    cli: Cli, make_clip: MakeClip, serial_run: Path
) -> None:
    other = make_clip("longer.mp4", **{**TINY, "frames": 20})
    done = cli.run("predict", other, "--from", serial_run, "--tasks", "compress")
    message = _one_line_error(done)
    recorded = json.loads((serial_run / "report.json").read_text())["input"]["path"]
    assert f"'{recorded}'" in message and f"'{other}'" in message, message
    assert re.search(r"\(size_bytes \d+ against \d+\)", message), message


@pytest.mark.timeout(60)
def test_predict_from_a_run_of_a_copy_of_the_input_is_accepted(
    cli: Cli, serial_run: Path, tmp_path: Path
) -> None:
    """The same video at another path: its run measured the same work."""
    recorded = json.loads((serial_run / "report.json").read_text())
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(Path(recorded["input"]["path"]).read_bytes())
    done = cli.run("predict", copy, "--from", serial_run, "--tasks", "compress", "--json",
                   "--cores", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["serial_wall_seconds"] == recorded["wall_seconds"]


def _mutated(report: dict[str, Any], change: str) -> Any:
    """`report` changed as `change` says: a JSON value for the root, or KEY.KEY=JSON."""
    if "=" not in change:
        return json.loads(change)
    keys, _, value = change.partition("=")
    data = json.loads(json.dumps(report))
    *parents, last = keys.split(".")
    target = data
    for key in parents:
        target = target[key]
    target[last] = json.loads(value)
    return data


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "change",
    [
        "[]",
        "null",
        '"report"',
        'processes="x"',
        "processes=[1]",
        'processes=[{"pid": 1}]',
        "tasks=[]",
        "tasks.compress=[]",
        'tasks.compress.frames="many"',
        'tasks.compress.fps="1/0"',
        'tasks.compress.cpu_breakdown={"a": 1}',
        'wall_seconds="fast"',
        "wall_seconds=-1",
        "layout=7",
        "input=[]",
    ],
)
def test_predict_from_a_malformed_report_says_it_is_not_a_vidpipe_report(
    cli: Cli, tiny_clip: Path, serial_run: Path, tmp_path: Path, change: str
) -> None:
    report = json.loads((serial_run / "report.json").read_text())
    folder = tmp_path / "R"
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps(_mutated(report, change)))
    done = cli.run("predict", tiny_clip, "--from", folder, "--tasks", "compress")
    assert "is not a vidpipe report" in _one_line_error(done)
