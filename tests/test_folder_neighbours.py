"""What lies beside and inside vidpipe's own folders is never lost (issue 23, N1-N4, N13).

vidpipe removes in `.vidpipe/` only the files it names as its own (pieces, their digests, trace
parts, its temporary files), never a whole folder; it refuses an `--out` inside another output
folder's managed folders (`.vidpipe/`, `thumbnails/`), a lock that is not a plain file of its
own, and an empty path.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT


def _run(cli, *args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return cli.run(*args, cwd=cwd)


def _vp(cli, clip: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return _run(cli, "run", clip, "--out", out, "--layout", "serial", "--no-progress", *extra)


def _one_line(done: subprocess.CompletedProcess[str], code: int = 2) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "unexpected" not in lines[0]
    return lines[0]


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


# N1 (a): an --out inside another output folder's managed folders is refused.


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "inside",
    [".vidpipe", ".vidpipe/sub", ".vidpipe/pieces/render", "thumbnails", "thumbnails/render"],
)
def test_an_out_inside_another_folders_managed_folders_is_refused(
    inside, cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "D"
    assert _vp(cli, tiny_clip, out, "--tasks", "render").returncode == 0
    before = _files(out)
    line = _one_line(_vp(cli, tiny_clip, out / inside, "--tasks", "render"))
    assert str(out) in line
    assert _files(out) == before  # nothing created there


@pytest.mark.timeout(60)
def test_an_out_reaching_into_vidpipes_folder_through_a_link_is_refused(
    cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "D"
    assert _vp(cli, tiny_clip, out, "--tasks", "compress").returncode == 0
    link = tmp_path / "L"
    link.symlink_to(out / ".vidpipe")
    before = _files(out)
    _one_line(_vp(cli, tiny_clip, link / "pieces", "--tasks", "compress"))
    assert _files(out) == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("inside", [".vidpipe/cmp", "thumbnails/cmp"])
def test_compare_into_another_folders_managed_folders_is_refused(
    inside, cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "D"
    assert _vp(cli, tiny_clip, out, "--tasks", "compress").returncode == 0
    before = _files(out)
    done = _run(
        cli,
        "compare",
        tiny_clip,
        "--layouts",
        "serial",
        "--repeat",
        "1",
        "--tasks",
        "compress",
        "--out",
        out / inside,
    )
    _one_line(done)
    assert _files(out) == before


# N1 (b): only vidpipe's own files go from its pieces and trace folders.


@pytest.mark.timeout(120)
def test_a_users_file_in_the_pieces_folder_survives_fresh_and_pieced_runs(
    cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "D"
    assert _vp(cli, tiny_clip, out, "--tasks", "render").returncode == 0
    pieces = out / ".vidpipe" / "pieces" / "render"
    pieces.mkdir(parents=True)
    (pieces / "notes.txt").write_text("mine\n")
    # A fresh run starts the pieces afresh; one cut into pieces removes them once joined.
    pieced = ("--segment-frames", "4")
    for extra in ((), pieced, ("--layout", "segments", "--workers", "2"), ("--resume", *pieced)):
        done = _vp(cli, tiny_clip, out, "--tasks", "render", *extra)
        assert done.returncode == 0, done.stderr
        assert (pieces / "notes.txt").read_text() == "mine\n"
        assert {p.name for p in pieces.iterdir()} == {"notes.txt"}


@pytest.mark.timeout(120)
def test_a_users_file_in_the_pieces_folder_survives_a_failed_run(cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "D"
    pieces = out / ".vidpipe" / "pieces" / "render"
    assert _vp(cli, tiny_clip, out, "--tasks", "render").returncode == 0
    pieces.mkdir(parents=True)
    (pieces / "notes.txt").write_text("mine\n")
    cli.extra_env["VIDPIPE_FAULT"] = "stage:render:9:raise"
    done = _vp(cli, tiny_clip, out, "--tasks", "render", "--segment-frames", "4")
    del cli.extra_env["VIDPIPE_FAULT"]
    assert done.returncode == 1, done.stderr
    assert (pieces / "notes.txt").read_text() == "mine\n"
    assert "0000.mp4" in {p.name for p in pieces.iterdir()}  # kept for --resume
    resumed = _vp(cli, tiny_clip, out, "--tasks", "render", "--segment-frames", "4", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert {p.name for p in pieces.iterdir()} == {"notes.txt"}


@pytest.mark.timeout(120)
def test_an_out_made_in_the_pieces_folder_before_the_fix_is_left_alone(
    cli, tiny_clip, tmp_path
) -> None:
    """The folder an older vidpipe let a run write into stays, with that run's files."""
    out = tmp_path / "D"
    assert _vp(cli, tiny_clip, out, "--tasks", "render").returncode == 0
    pieces = out / ".vidpipe" / "pieces" / "render"
    pieces.mkdir(parents=True)
    (pieces / "rendered.mp4").write_bytes(b"another run's video")
    done = _vp(cli, tiny_clip, out, "--tasks", "render")
    assert done.returncode == 0, done.stderr
    assert (pieces / "rendered.mp4").read_bytes() == b"another run's video"


@pytest.mark.timeout(120)
def test_a_users_files_in_the_trace_folder_survive_and_stay_out_of_the_trace(
    cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "D"
    assert _vp(cli, tiny_clip, out, "--tasks", "compress").returncode == 0
    parts = out / ".vidpipe" / "trace"
    parts.mkdir()
    mine = [{"name": "users-own-event", "ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 1}]
    (parts / "notes.json").write_text(json.dumps(mine))
    (parts / "notes.txt").write_text("mine\n")
    for layout in ("serial", "processes"):
        done = _run(
            cli,
            *("run", tiny_clip, "--out", out, "--layout", layout, "--no-progress"),
            *("--tasks", "compress", "--trace"),
        )
        assert done.returncode == 0, done.stderr
        assert {p.name for p in parts.iterdir()} == {"notes.json", "notes.txt"}
        assert "users-own-event" not in (out / "trace.json").read_text()


@pytest.mark.timeout(60)
def test_a_killed_traced_runs_parts_are_not_merged_into_the_next_trace(
    cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "D"
    assert _vp(cli, tiny_clip, out, "--tasks", "compress").returncode == 0
    parts = out / ".vidpipe" / "trace"
    parts.mkdir()
    stale = [{"name": "stale-event", "ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 1}]
    (parts / "99999999.json").write_text(json.dumps(stale))
    done = _vp(cli, tiny_clip, out, "--tasks", "compress", "--trace")
    assert done.returncode == 0, done.stderr
    assert "stale-event" not in (out / "trace.json").read_text()
    assert not parts.exists()


@pytest.mark.timeout(60)
def test_a_folder_where_vidpipe_writes_a_piece_is_refused(cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "D"
    assert _vp(cli, tiny_clip, out, "--tasks", "render").returncode == 0
    blocker = out / ".vidpipe" / "pieces" / "render" / "0000.mp4"
    blocker.mkdir(parents=True)
    (blocker / "mine.txt").write_text("mine\n")
    line = _one_line(_vp(cli, tiny_clip, out, "--tasks", "render", "--segment-frames", "4"))
    assert "0000.mp4" in line
    assert (blocker / "mine.txt").read_text() == "mine\n"


# N2, N3, N13: the lock is a plain file of vidpipe's own, or the run is refused.


def _break_lock(lock: Path, kind: str, victim: Path) -> None:
    lock.unlink()
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "directory":
        lock.mkdir()
    elif kind == "hard link":
        os.link(victim, lock)
    else:
        lock.symlink_to(victim)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["fifo", "directory", "hard link", "symlink"])
@pytest.mark.parametrize("resume", [False, True])
def test_a_lock_that_is_not_vidpipes_plain_file_is_refused(
    kind, resume, cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "D"
    assert _vp(cli, tiny_clip, out, "--tasks", "compress").returncode == 0
    victim = tmp_path / "users-file.txt"
    victim.write_text("the user's own words\n")
    lock = out / ".vidpipe" / "lock"
    _break_lock(lock, kind, victim)
    extra = ("--resume",) if resume else ("--force",)
    line = _one_line(_vp(cli, tiny_clip, out, "--tasks", "compress", *extra))
    assert "lock" in line
    assert victim.read_text() == "the user's own words\n"


# N4: an empty path is refused, not taken for the current folder.


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "args",
    [
        ("run", "{clip}", "--out", "", "--tasks", "compress", "--no-progress"),
        ("run", "", "--out", "o", "--tasks", "compress", "--no-progress"),
        ("compare", "{clip}", "--out", "", "--layouts", "serial", "--repeat", "1"),
        ("predict", "{clip}", "--from", ""),
        ("probe", ""),
    ],
)
def test_a_blank_path_is_refused(args, cli, tiny_clip, tmp_path) -> None:
    args = tuple(str(tiny_clip) if a == "{clip}" else a for a in args)
    done = _run(cli, *args, cwd=tmp_path)
    line = _one_line(done)
    assert "is empty" in line and str(tmp_path) not in line
    assert not list(tmp_path.iterdir())  # nothing written in the current folder
