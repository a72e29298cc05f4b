"""A stage that raises KeyboardInterrupt itself, with no signal, fails as a stage: named with
its frame, exit 1; only a real Ctrl-C, SIGTERM or SIGHUP is an interruption (issue 23, D28)."""

from __future__ import annotations

import pytest

_KBI = "def kbi(frame, index):\n    if index == 5:\n        raise KeyboardInterrupt\n    return frame\n"  # noqa: E501


@pytest.mark.timeout(120)
@pytest.mark.parametrize("layout", ["serial", "threads", "processes", "pool", "segments"])
def test_a_stage_raising_keyboard_interrupt_is_a_stage_failure(
    layout, cli, tiny_clip, tmp_path
) -> None:
    stage = tmp_path / "k.py"
    stage.write_text(_KBI)
    done = cli.run(
        "run", tiny_clip, "--out", tmp_path / "o", "--layout", layout, "--tasks", "compress",
        "--stage", f"compress:{stage}:kbi", "--no-progress",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "stage 'kbi' failed on frame 5" in lines[0] and "KeyboardInterrupt" in lines[0]


@pytest.mark.timeout(120)
def test_too_few_open_files_is_the_users_limit_in_one_line(cli, tiny_clip, tmp_path) -> None:
    """D26: EMFILE names the limit and what to do, never 'unexpected'."""
    import resource
    import subprocess
    import sys

    from conftest import ROOT

    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (10, 10))

    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(tiny_clip), "--out", str(tmp_path / "o"),
         "--layout", "threads", "--no-progress"],
        capture_output=True, text=True, cwd=ROOT, timeout=100, env=cli.env(),
        preexec_fn=few_files,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: too many open files"), lines
    assert "ulimit -n 10" in lines[0]
