"""Frame pools: they really run in parallel, stay bounded, and clean up after themselves."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import assert_tree_gone, shm_segments
from stages_for_tests import BurnCpu, FailAt

from pipeline import EncoderSettings, RunOptions, StageError
from pipeline.config import Transport
from pipeline.job import execute, plan
from pipeline.tasks import Task


def _job(clip: Path, out: Path, layout: str, stages: tuple, **options):  # type: ignore[no-untyped-def]
    base = plan(clip, RunOptions(out_dir=out, layout=layout, **options))
    task = Task("work", stages, "work.mp4", EncoderSettings(), keep_audio=False)
    return dataclasses.replace(base, tasks=(task,))


@pytest.mark.parametrize("transport", list(Transport))
def test_pool_workers_share_the_frames(transport, make_clip, tmp_path) -> None:
    clip = make_clip("pool.mp4", size="64x48", frames=24)
    job = _job(clip, tmp_path, "pool", (BurnCpu(0.02),), workers=2, transport=transport)
    report = execute(job)
    workers = report.tasks["work"].workers
    assert len(workers) == 2 and len({w.pid for w in workers}) == 2
    assert all(w.frames > 0 for w in workers), workers
    assert sum(w.frames for w in workers) == 24
    roles = [p.role for p in report.processes]
    assert roles.count("pool:work") == 2


def test_hybrid_threads_share_the_frames(make_clip, tmp_path) -> None:
    clip = make_clip("pool.mp4", size="64x48", frames=24)
    report = execute(_job(clip, tmp_path, "hybrid", (BurnCpu(0.01),), workers=2))
    workers = report.tasks["work"].workers
    assert len(workers) == 2 and len({w.pid for w in workers}) == 1
    assert sum(w.frames for w in workers) == 24


@pytest.mark.parametrize("transport", list(Transport))
def test_a_stage_error_in_a_pool_worker_fails_the_run_cleanly(
    transport, tiny_clip, tmp_path
) -> None:
    job = _job(tiny_clip, tmp_path, "pool", (FailAt(5),), workers=2, transport=transport)
    with pytest.raises(StageError) as caught:
        execute(job)
    assert (caught.value.stage, caught.value.index) == ("fail-at", 5)
    assert not list(tmp_path.glob("*.part"))
    # the autouse fixture checks that no process and no shared-memory segment is left


@pytest.mark.timeout(60)
@pytest.mark.parametrize("layout", ["pool", "hybrid"])
def test_an_interrupted_pool_leaves_nothing(layout, cli, tmp_path, make_clip) -> None:
    clip = make_clip("long.mp4", size="320x240", frames=300)
    out = tmp_path / "out"
    proc = cli.start(
        "run",
        clip,
        "--out",
        out,
        "--layout",
        layout,
        "--workers",
        "2",
        "--particles",
        "2000",
        "--save-every",
        "1",
    )
    deadline = time.monotonic() + 30
    while not (out / "render.checkpoint.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "run never got going"
        time.sleep(0.02)
    if layout == "pool":
        assert shm_segments(), "the pool moves frames through shared memory"
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - sent < 3
    assert_tree_gone(cli.tag)
    assert not shm_segments()
    assert not list(out.glob("*.part"))
