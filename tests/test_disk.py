"""An output directory that cannot be written, or a disk that fills up: one clear line, exit code
2 or 1, no partial file, the input untouched.

A small or read-only tmpfs stands in for the full or read-only disk; mounting one needs root (as
in CI's containers). Where it cannot be mounted, the unwritable case falls back to a directory
without write permission, which binds everyone but root.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

Mount = Callable[[str], Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """Mounts a tmpfs with the given options under tmp_path; skips when mounting is not allowed."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.mark.timeout(60)
@pytest.mark.parametrize("layout", ["serial", "processes"])
def test_a_full_disk_fails_with_the_cause_and_leaves_nothing_partial(
    layout, cli, make_clip, tmpfs
) -> None:
    clip = make_clip("disk.mp4", size="320x240", frames=120, gop=10, audio=True)
    before = _fingerprint(clip)
    out = tmpfs("size=300k") / "out"
    done = cli.run("run", clip, "--out", out, "--layout", layout, "--no-progress")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "no space left on" in lines[0].lower(), lines[0]  # ffmpeg's words, or ours
    assert not list(out.rglob("*.part")) and not list(out.rglob("*.tmp"))
    assert not (out / "report.json").exists()
    assert _fingerprint(clip) == before


@pytest.mark.timeout(60)
def test_an_unwritable_output_directory_is_a_usage_error(cli, tiny_clip, tmpfs, tmp_path) -> None:
    before = _fingerprint(tiny_clip)
    if os.geteuid() == 0:
        readonly = tmpfs("ro,size=1M")
    else:
        readonly = tmp_path / "readonly"
        readonly.mkdir(mode=0o500)
    for out, problem in [
        (readonly, "directory is not writable"),
        (readonly / "new", "cannot create it"),
    ]:
        done = cli.run("run", tiny_clip, "--out", out, "--no-progress")
        assert done.returncode == 2
        assert done.stderr.startswith(f"error: --out {out}: {problem}"), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert _fingerprint(tiny_clip) == before
