"""Faults while running, injected with VIDPIPE_FAULT: each ends the run promptly, with one line
naming the task and what failed, and leaves no process, shared memory or partial file behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from conftest import ROOT, assert_only_recorded_pieces, assert_tree_gone

CASES = [
    (
        "stage:render:5:kill",
        "processes",
        r"task 'render': worker process died \(killed by SIGKILL\)",
    ),
    ("stage:render:5:kill", "pool", r"task 'render': pool worker \d died \(killed by SIGKILL\)"),
    (
        "stage:render:5:kill",
        "segments",
        r"task 'render': segment \d worker died \(killed by SIGKILL\)",
    ),
    (
        "stage:render:5:raise",
        "hybrid",
        r"task 'render': stage 'animate' failed on frame \d+: InjectedFault",
    ),
    (
        "stage:render:5:raise",
        "pool",
        r"task 'render': stage 'animate' failed on frame \d+: InjectedFault",
    ),
    (
        "encoder:render:5:kill",
        "threads",
        r"task 'render': rendered.mp4: encoder stopped \(killed by SIGKILL\)",
    ),
    # compress has no stage: one ffmpeg decodes and encodes it (pipeline.media.transcode)
    (
        "encoder:compress:5:kill",
        "threads",
        r"task 'compress': .*transcoding failed \(killed by SIGKILL\)",
    ),
    (
        "encoder:render:5:kill",
        "pool",
        r"task 'render': rendered.mp4: encoder stopped \(killed by SIGKILL\)",
    ),
    ("decoder:render:5:kill", "serial", r"task 'render': .*decoding failed \(killed by SIGKILL\)"),
    (
        "decoder:compress:5:kill",
        "processes",
        r"task 'compress': .*transcoding failed \(killed by SIGKILL\)",
    ),
    ("saver:render:0:raise", "processes", r"background save failed: injected fault"),
    ("saver:compress:0:raise", "serial", r"background save failed: injected fault"),
    ("progress:render:3:raise", "threads", r"progress thread failed: InjectedFault"),
    ("progress:compress:3:raise", "processes", r"progress thread failed: InjectedFault"),
]


# Layouts that start worker processes run each case under both start methods: a forked worker
# inherits the parent's state (threads' locks, signal handlers), a spawned one starts afresh.
WITH_START_METHODS = [
    (*case, start)
    for case in CASES
    for start in (("spawn", "fork") if case[1] not in ("serial", "threads") else ("spawn",))
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("fault", "layout", "message", "start"), WITH_START_METHODS, ids=lambda v: str(v)[:24]
)
def test_a_fault_ends_the_run_cleanly_naming_its_cause(
    fault, layout, message, start, cli, make_clip, tmp_path
) -> None:
    clip = make_clip("faults.mp4", size="320x240", frames=200, gop=25)
    out = tmp_path / "out"
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            str(clip),
            "--out",
            str(out),
            "--layout",
            layout,
            "--start-method",
            start,
            "--workers",
            "2",
            "--save-every",
            "1",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**cli.env(), "VIDPIPE_FAULT": fault},
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert re.search(message, lines[0]), lines[0]
    # The bound from the fault to the exit, here with the start-up included.
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert_tree_gone(cli.tag)  # shared memory: checked by the autouse fixture after the test
    assert_only_recorded_pieces(out)
    assert not (out / "report.json").exists()


def test_a_malformed_fault_spec_is_a_usage_error(cli, tiny_clip, tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(tiny_clip), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "VIDPIPE_FAULT": "nowhere:render:1:explode"},
    )
    assert done.returncode == 2 and done.stderr.startswith("error: VIDPIPE_FAULT=")
    assert len(done.stderr.strip().splitlines()) == 1
