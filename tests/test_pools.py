"""Frame pools: they really run in parallel, stay bounded, and clean up after themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from stages_for_tests import BurnCpu, FailAt, Racy

from pipeline import EncoderSettings, RunOptions, StageError
from pipeline.config.settings import Transport
from pipeline.job import execute, plan
from pipeline.plan.tasks import Task


def _job(clip: Path, out: Path, layout: str, stages: tuple, **options):  # type: ignore[no-untyped-def]
    base = plan(clip, RunOptions(out_dir=out, layout=layout, **options))
    task = Task("work", stages, "work.mp4", EncoderSettings(), keep_audio=False)
    return base.with_tasks(task)


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


def test_threads_of_a_pool_run_their_own_copies_of_the_stages(make_clip, tmp_path) -> None:
    # Racy keeps the frame it works on in `self`: threads sharing one instance would race.
    clip = make_clip("pool.mp4", size="64x48", frames=24)
    digests = [
        execute(_job(clip, tmp_path / f"{n}", layout, (Racy(),), workers=3))
        .tasks["work"]
        .frame_digest
        for n, layout in enumerate(("serial", "hybrid", "hybrid"))
    ]
    assert digests[1] == digests[2] == digests[0]


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
