"""vidpipe never writes or removes through a link it did not make: every folder it manages in
--out (thumbnails, each task's thumbnails, compare's runs) must be a real folder (issue 23, D1)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


def _run(cli, *args: str | Path) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env=cli.env(),
    )


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.timeout(90)
@pytest.mark.parametrize("link", ["thumbnails", "thumbnails/render"])
def test_a_linked_thumbnails_folder_is_refused_and_its_target_untouched(
    link, cli, tiny_clip, tmp_path
) -> None:
    out = tmp_path / "D"
    first = _run(
        cli,
        "run",
        tiny_clip,
        "--out",
        out,
        "--layout",
        "serial",
        "--tasks",
        "render",
        "--no-progress",
    )
    assert first.returncode == 0, first.stderr
    # The user moves the thumbnails away, keeps them, and leaves a link in their place.
    keep = tmp_path / "keep" / "mythumbs"
    keep.parent.mkdir()
    (out / link).rename(keep)
    (out / link).symlink_to(keep)
    (keep / "mine.txt").write_text("my own notes\n")
    before = _digests(keep)
    assert before
    again = _run(
        cli,
        "run",
        tiny_clip,
        "--out",
        out,
        "--layout",
        "serial",
        "--tasks",
        "render",
        "--save-every",
        "4",
        "--no-progress",
    )
    assert again.returncode == 2, again.stderr
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "is a link" in lines[0]
    assert str(out / link) in lines[0]
    assert _digests(keep) == before, "files outside --out were touched through the link"
    # --force overwrites files, never writes through a link.
    forced = _run(
        cli,
        "run",
        tiny_clip,
        "--out",
        out,
        "--layout",
        "serial",
        "--tasks",
        "render",
        "--force",
        "--no-progress",
    )
    assert forced.returncode == 2, forced.stderr
    assert _digests(keep) == before


@pytest.mark.timeout(60)
def test_a_linked_runs_folder_of_compare_is_refused(cli, tiny_clip, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "serial-1").mkdir()
    (elsewhere / "serial-1" / "report.json").write_text('{"mine": true}')
    out = tmp_path / "C"
    out.mkdir()
    (out / "runs").symlink_to(elsewhere)
    done = _run(
        cli,
        "compare",
        tiny_clip,
        "--out",
        out,
        "--layouts",
        "serial",
        "--repeat",
        "1",
        "--tasks",
        "compress",
        "--force",
    )
    assert done.returncode == 2, done.stderr
    assert "is a link" in done.stderr and done.stderr.count("\n") == 1
    assert (elsewhere / "serial-1" / "report.json").read_text() == '{"mine": true}'
    assert sorted(p.name for p in elsewhere.rglob("*")) == ["report.json", "serial-1"]


@pytest.mark.timeout(60)
def test_a_linked_run_folder_of_compare_is_refused(cli, tiny_clip, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "report.json").write_text('{"mine": true}')
    out = tmp_path / "C"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "serial-1").symlink_to(elsewhere)
    done = _run(
        cli, "compare", tiny_clip, "--out", out, "--layouts", "serial", "--repeat", "1",
        "--tasks", "compress", "--force",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "is a symbolic link (to a directory)" in done.stderr and done.stderr.count("\n") == 1
    assert [p.name for p in elsewhere.iterdir()] == ["report.json"]
    assert (elsewhere / "report.json").read_text() == '{"mine": true}'


_CHDIR = (
    "import os\nclass Chdir:\n  def setup(self, spec): os.chdir({assets!r})\n"
    "  def process(self, f, i): return f\n"
)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("layout", ["serial", "threads"])
def test_a_stage_that_changes_folder_moves_nothing_vidpipe_writes(
    layout, cli, tiny_clip, tmp_path
) -> None:
    """D3: a relative --out is made absolute before any stage runs."""
    work = tmp_path / "work"
    assets = work / "assets"
    (assets / "out").mkdir(parents=True)
    theirs = assets / "out" / "compressed.mp4"
    theirs.write_text("the user's own video")
    (work / "st.py").write_text(_CHDIR.format(assets=str(assets)))
    (work / "in.mp4").write_bytes(tiny_clip.read_bytes())
    done = subprocess.run(
        [
            sys.executable, "-m", "pipeline", "run", "in.mp4", "--out", "out", "--layout", layout,
            "--tasks", "compress", "--stage", "compress:st.py:Chdir", "--no-progress",
        ],
        capture_output=True, text=True, cwd=work, timeout=120,
        env={**cli.env(), "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert theirs.read_text() == "the user's own video"
    assert sorted(p.name for p in (assets / "out").iterdir()) == ["compressed.mp4"]
    assert (work / "out" / "compressed.mp4").stat().st_size > 0
    assert (work / "out" / "report.json").is_file()


@pytest.mark.timeout(60)
def test_a_relative_out_from_a_removed_folder_is_one_line(cli, tiny_clip, tmp_path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    script = (
        "import os, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
        "from pipeline.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(gone), "run", str(tiny_clip), "--out", "out",
         "--layout", "serial", "--tasks", "compress", "--no-progress"],
        capture_output=True, text=True, timeout=60, env={**cli.env(), "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --out out: the current folder")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["files", "claims", "foreign", "recorded"])
@pytest.mark.parametrize("path", ["/etc/hostname", "../victim.txt", "a/../../victim.txt"])
def test_a_manifest_naming_a_path_outside_out_is_not_vidpipes(
    where, path, cli, tiny_clip, tmp_path
) -> None:
    """D23: a hand-edited manifest is refused as not vidpipe's, and nothing outside is touched."""
    import json

    out = tmp_path / "B"
    first = _run(cli, "run", tiny_clip, "--out", out, "--layout", "serial", "--tasks", "compress",
                 "--no-progress")  # fmt: skip
    assert first.returncode == 0, first.stderr
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    manifest_path = out / ".vidpipe" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    stamp = [4, victim.stat().st_mtime_ns]
    if where == "recorded":
        manifest["files"][path] = stamp
    else:
        pending = {"files": [], "claims": [], "foreign": {}}
        pending[where] = {path: stamp} if where == "foreign" else [path]
        manifest["pending"] = pending
    manifest_path.write_text(json.dumps(manifest))
    done = _run(cli, "run", tiny_clip, "--out", out, "--layout", "serial", "--tasks", "compress",
                "--no-progress")  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a vidpipe manifest" in lines[0], lines
    assert victim.read_text() == "mine"
