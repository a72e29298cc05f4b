"""Nothing of the user's is ever lost: vidpipe removes or replaces only what it wrote in --out,
never the input, and refuses (exit 2) rather than guess; one run at a time holds a folder."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, assert_tree_gone

# Files a user may keep in the folder they give as --out; none is at a path vidpipe writes.
USER_FILES = {
    "notes.txt": b"my notes\n",
    ".session.tmp": b"an editor's session\n",
    ".myeditor.tmp": b"another editor's file\n",
    "compressed.mp4.part": b"a download of mine, not vidpipe's\n",
    "thumbnails/compress/holiday.jpg": b"\xff\xd8 my picture",
    "thumbnails/render/cover.png": b"\x89PNG my cover",
    "thumbnails/mine/frame_000000.jpg": b"\xff\xd8 another task's name, not vidpipe's",
    ".pieces/render/0000.mp4": b"my own pieces folder",
    ".pieces/notes.txt": b"more notes",
    "trace.json": b'{"my": "trace"}',
}


def _snapshot(folder: Path, names: list[str]) -> dict[str, str]:
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in names
        if (folder / name).is_file()
    }


def _plant(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _run(cli, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run", *map(str, args), "--no-progress"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**cli.env(), **(env or {})},
    )


def _one_error_line(done: subprocess.CompletedProcess, code: int, *words: str) -> str:  # type: ignore[type-arg]
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("where", "tasks"),
    [
        ("compressed.mp4", "compress,render"),
        ("rendered.mp4", "render"),
        ("thumbnails/render/in.mp4", "compress,render"),
        ("report.json", "compress"),
        ("render.checkpoint.json", "render"),
        (".vidpipe/in.mp4", "compress"),
        ("link-to-output", "compress"),  # a symlink whose target is where vidpipe writes
    ],
)
def test_the_input_is_never_where_vidpipe_writes(where, tasks, cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "d"
    if where == "link-to-output":
        out.mkdir()
        source = tmp_path / "input.mp4"
        source.write_bytes(tiny_clip.read_bytes())
        (out / "compressed.mp4").symlink_to(source)
        source = out / "compressed.mp4"
    else:
        source = out / where
        source.parent.mkdir(parents=True)
        source.write_bytes(tiny_clip.read_bytes())
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    done = _run(cli, source, "--out", out, "--tasks", tasks)
    _one_error_line(done, 2, "input")
    assert source.read_bytes() == tiny_clip.read_bytes(), "the input survives"
    after = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert after == before, "nothing is touched before the input is refused"


def test_an_input_in_the_output_folder_itself_is_fine(cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "videos"
    out.mkdir()
    source = out / "holiday.mp4"
    source.write_bytes(tiny_clip.read_bytes())
    done = _run(cli, source, "--out", out, "--layout", "serial")
    assert done.returncode == 0, done.stderr
    assert source.read_bytes() == tiny_clip.read_bytes()


@pytest.mark.parametrize(
    "name",
    [
        "compressed.mp4",
        "rendered.mp4",
        "report.json",
        "render.checkpoint.json",
        "thumbnails/render/frame_000000.jpg",
    ],
)
def test_a_file_vidpipe_did_not_write_is_refused_then_forced(
    name, cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "d"
    _plant(out, {name: b"the user's own file", "keep.txt": b"untouched"})
    done = _run(cli, tiny_clip, "--out", out, "--layout", "serial")
    _one_error_line(done, 2, str(out / name), "--force")
    assert (out / name).read_bytes() == b"the user's own file"
    assert not (out / ".vidpipe").exists(), "a refused run leaves nothing behind"

    done = _run(cli, tiny_clip, "--out", out, "--layout", "serial", "--force")
    assert done.returncode == 0, done.stderr
    assert (out / name).read_bytes() != b"the user's own file", "--force overwrote it"
    assert (out / "keep.txt").read_bytes() == b"untouched", "and nothing else"
    # vidpipe wrote it now: an ordinary rerun replaces it without --force.
    assert _run(cli, tiny_clip, "--out", out, "--layout", "serial").returncode == 0


def test_a_file_vidpipe_wrote_and_the_user_replaced_is_the_users(cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "d"
    assert _run(cli, tiny_clip, "--out", out, "--layout", "serial").returncode == 0
    (out / "report.json").write_text('{"mine": true}')
    done = _run(cli, tiny_clip, "--out", out, "--layout", "serial")
    _one_error_line(done, 2, "report.json")
    assert (out / "report.json").read_text() == '{"mine": true}'


def test_a_folder_where_an_output_goes_is_refused_even_with_force(cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "d"
    _plant(out, {"rendered.mp4/mine.txt": b"a folder of mine"})
    done = _run(cli, tiny_clip, "--out", out, "--force")
    _one_error_line(done, 2, "rendered.mp4", "folder")
    assert (out / "rendered.mp4" / "mine.txt").read_bytes() == b"a folder of mine"


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("kind", "layout"),
    [
        ("success", "processes"),
        ("success", "segments"),
        ("rerun", "threads"),
        ("failure", "processes"),
        ("failure", "serial"),
        ("interrupt", "segments"),
        ("kill", "processes"),
        ("resume", "segments"),
    ],
)
def test_user_files_in_out_survive_every_kind_of_run(
    kind, layout, cli, make_clip, tmp_path
) -> None:
    clip = make_clip("owned.mp4", size="160x120", frames=120, gop=10, audio=True)
    out = tmp_path / "home"
    _plant(out, USER_FILES)
    names = list(USER_FILES)
    before = _snapshot(out, names)
    common = ["--out", out, "--layout", layout, "--workers", "2", "--segment-frames", "20"]
    if kind in ("success", "rerun"):
        for _ in range(2 if kind == "rerun" else 1):
            assert _run(cli, clip, *common).returncode == 0
    elif kind in ("failure", "resume"):
        fault = {"VIDPIPE_FAULT": "stage:render:70:raise"}
        assert _run(cli, clip, *common, env=fault).returncode == 1
        if kind == "resume":
            done = _run(cli, clip, *common, "--resume")
            assert done.returncode == 0, done.stderr
    else:
        proc = cli.start("run", clip, *common, "--save-every", "1", "--particles", "3000")
        deadline = time.monotonic() + 30
        while not list((out / "thumbnails" / "render").glob("frame_*.jpg")):
            assert proc.poll() is None and time.monotonic() < deadline, "run never got going"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT if kind == "interrupt" else signal.SIGKILL)
        proc.communicate(timeout=10)
        assert_tree_gone(cli.tag)
        # A run after a killed one: the dead run's lock does not block it.
        done = _run(cli, clip, *common)
        assert done.returncode == 0, done.stderr
    assert _snapshot(out, names) == before, "every file of the user's is as it was"
    assert set(USER_FILES) <= {p.relative_to(out).as_posix() for p in out.rglob("*")}


@pytest.mark.timeout(60)
def test_a_second_run_into_a_folder_in_use_is_refused(cli, make_clip, tmp_path) -> None:
    clip = make_clip("busy.mp4", size="160x120", frames=150)
    out = tmp_path / "d"
    go = tmp_path / "go"  # the first run waits at frame 3 until the second has been refused
    first = cli.start(
        "run", clip, "--out", out, "--tasks", "render", "--no-progress",
        "--stage", f"render:tests.stages_for_tests:WaitsFor:path='{go}'",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not go.with_name("go.waiting").exists():
        assert first.poll() is None and time.monotonic() < deadline, "first run never got going"
        time.sleep(0.02)
    second = _run(cli, clip, "--out", out, "--layout", "serial")
    go.touch()
    _one_error_line(second, 2, "in use by another vidpipe run", f"pid {first.pid}")
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["tasks"]["render"]["frames"] == 150


def test_an_unreadable_manifest_is_refused(cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "d"
    assert _run(cli, tiny_clip, "--out", out, "--layout", "serial").returncode == 0
    (out / ".vidpipe" / "manifest.json").write_text("[1, 2")
    done = _run(cli, tiny_clip, "--out", out, "--layout", "serial")
    _one_error_line(done, 2, "manifest")
    assert (out / "compressed.mp4").is_file(), "nothing was removed"


def test_vidpipes_own_folder_must_be_a_folder(cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "d"
    _plant(out, {".vidpipe": b"a file of mine"})
    done = _run(cli, tiny_clip, "--out", out, "--layout", "serial")
    _one_error_line(done, 2, ".vidpipe")
    assert (out / ".vidpipe").read_bytes() == b"a file of mine"


def test_a_file_the_user_replaced_stays_theirs_after_a_run_of_another_task(
    cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "d"
    assert _run(cli, tiny_clip, "--out", out, "--layout", "serial").returncode == 0
    (out / "rendered.mp4").write_bytes(b"the user's own render")
    done = _run(cli, tiny_clip, "--out", out, "--layout", "serial", "--tasks", "compress")
    assert done.returncode == 0, done.stderr
    refused = _run(cli, tiny_clip, "--out", out, "--layout", "serial", "--tasks", "render")
    _one_error_line(refused, 2, "rendered.mp4", "--force")
    assert (out / "rendered.mp4").read_bytes() == b"the user's own render"


def _killed_run_left(out: Path, claimed: list[str], heartbeat: float) -> None:
    """What a run SIGKILLed at `heartbeat` (a Unix time) leaves: its claims, never settled."""
    work = out / ".vidpipe"
    work.mkdir(parents=True)
    pending = {"files": claimed, "claims": ["thumbnails/render/frame_*.jpg"], "foreign": {}}
    manifest = {"vidpipe_manifest": 2, "files": {}, "pending": pending}
    (work / "manifest.json").write_text(json.dumps(manifest))
    (work / "lock").write_text("12345\n")
    os.utime(work / "lock", (heartbeat, heartbeat))


def test_a_killed_runs_claims_cover_only_what_it_wrote_before_it_died(
    cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "d"
    died = time.time() - 600
    _killed_run_left(out, ["report.json", "compressed.mp4", "render.checkpoint.json"], died)
    theirs = out / "compressed.mp4"
    theirs.write_bytes(b"written by the killed run")
    os.utime(theirs, (died - 5, died - 5))
    (out / "report.json").write_text('{"the user": "added this after the kill"}')
    done = _run(cli, tiny_clip, "--out", out, "--layout", "serial")
    _one_error_line(done, 2, "report.json", "--force")
    assert (out / "report.json").read_text() == '{"the user": "added this after the kill"}'
    (out / "report.json").unlink()
    done = _run(cli, tiny_clip, "--out", out, "--layout", "serial")
    assert done.returncode == 0, done.stderr
    assert theirs.read_bytes() != b"written by the killed run", "vidpipe's own, replaced"


def test_a_failed_forced_run_leaves_the_users_file_it_did_not_replace(
    cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "d"
    _plant(out, {"rendered.mp4": b"the user's own render"})
    done = _run(
        cli, tiny_clip, "--out", out, "--layout", "serial", "--force",
        "--stage", "render:tests.stages_for_tests:FailAt:at=5",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert (out / "rendered.mp4").read_bytes() == b"the user's own render"


@pytest.mark.parametrize("link", [".vidpipe/pieces", ".vidpipe/lock", ".vidpipe/pieces/render"])
def test_a_link_inside_vidpipes_folder_is_refused(link, cli, make_clip, tmp_path) -> None:
    clip = make_clip("linked.mp4", size="160x120", frames=150, gop=30)
    out = tmp_path / "d"
    assert _run(cli, clip, "--out", out, "--layout", "serial").returncode == 0
    elsewhere = tmp_path / "user"
    _plant(elsewhere, {"render/0000.mp4": b"user's", "lock": b"user's lock", "a.txt": b"mine"})
    target = elsewhere / ("lock" if link.endswith("lock") else "")
    (out / link).parent.mkdir(parents=True, exist_ok=True)
    if (out / link).exists():
        (out / link).unlink()
    (out / link).symlink_to(target)
    done = _run(cli, clip, "--out", out, "--layout", "serial", "--segment-frames", "60")
    _one_error_line(done, 2, str(out / link), "is a link")
    assert sorted(p.relative_to(elsewhere).as_posix() for p in elsewhere.rglob("*")) == [
        "a.txt", "lock", "render", "render/0000.mp4"
    ]  # fmt: skip
    assert (elsewhere / "lock").read_bytes() == b"user's lock"


def test_runs_starting_together_in_a_new_folder_hold_it_one_at_a_time(tmp_path) -> None:
    import threading

    from pipeline.errors import FolderInUse
    from pipeline.plan.ownership import Claim, hold

    for trial in range(20):
        out = tmp_path / f"new-{trial}"
        start = threading.Barrier(4)
        holding, outcomes = [], []

        def attempt(
            out: Path = out,
            start: threading.Barrier = start,
            holding: list[int] = holding,
            outcomes: list[str] = outcomes,
        ) -> None:
            start.wait()
            try:
                with hold(out, Claim()):
                    holding.append(1)
                    time.sleep(0.05)
                    assert (out / ".vidpipe" / "manifest.json").is_file()
                    holding.pop()
                    outcomes.append("held")
            except FolderInUse:
                outcomes.append("refused")
            except BaseException as exc:  # anything else is the defect
                outcomes.append(repr(exc))

        threads = [threading.Thread(target=attempt) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(set(outcomes)) in (["held"], ["held", "refused"]), outcomes
        assert (out / ".vidpipe" / "manifest.json").is_file()


def test_an_input_named_like_a_partial_output_is_refused(cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "d"
    source = out / ".clip.vidpipe.part"
    source.parent.mkdir()
    source.write_bytes(tiny_clip.read_bytes())
    done = _run(cli, source, "--out", out, "--layout", "serial")
    _one_error_line(done, 2, "named like vidpipe's temporary files")
    assert source.read_bytes() == tiny_clip.read_bytes()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("what", ["checkpoint", "manifest", "layout file"])
def test_a_fifo_where_vidpipe_reads_a_file_is_refused(what, cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "d"
    args = ["--layout", "serial"]
    if what == "layout file":
        fifo = tmp_path / "layout.toml"
        args = ["--layout", str(fifo)]
    elif what == "manifest":
        assert _run(cli, tiny_clip, "--out", out, "--layout", "serial").returncode == 0
        fifo = out / ".vidpipe" / "manifest.json"
        fifo.unlink()
    else:
        out.mkdir()
        fifo = out / "render.checkpoint.json"
        args += ["--resume"]
    os.mkfifo(fifo)
    done = _run(cli, tiny_clip, "--out", out, *args)
    _one_error_line(done, 2, str(fifo), "not a regular file")


def test_a_checkpoint_nested_too_deeply_is_malformed(cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "d"
    out.mkdir()
    (out / "render.checkpoint.json").write_text("[" * 200_000 + "]" * 200_000)
    done = _run(cli, tiny_clip, "--out", out, "--layout", "serial", "--resume")
    _one_error_line(done, 2, "cannot read checkpoint")
