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
