"""The contract every layout keeps: the serial run's frames, complete outputs, helpers at work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY

from pipeline import RunOptions, StartMethod, run
from pipeline.config.settings import Transport
from pipeline.layouts import LAYOUTS
from pipeline.media import count_decoded_frames, probe
from pipeline.report.reporters import RecordingReporter

SPAWN, FORK, FORKSERVER = StartMethod.SPAWN, StartMethod.FORK, StartMethod.FORKSERVER
SHM, PICKLE = Transport.SHM, Transport.PICKLE

# (layout, start method, transport): process layouts run under several start methods.
VARIANTS = [
    ("serial", SPAWN, SHM),
    ("threads", SPAWN, SHM),
    ("processes", SPAWN, SHM),
    ("processes", FORK, SHM),
    ("processes", FORKSERVER, SHM),
    ("hybrid", SPAWN, SHM),
    ("hybrid", FORK, SHM),
    ("pool", SPAWN, SHM),
    ("pool", FORK, SHM),
    ("pool", FORKSERVER, SHM),
    ("pool", SPAWN, PICKLE),
    ("pool", FORK, PICKLE),
    ("segments", SPAWN, SHM),
    ("segments", FORK, SHM),
    ("ray", SPAWN, SHM),  # Ray starts its own workers; the start method does not apply
]


@pytest.fixture(scope="module")
def serial_digests(make_clip, tmp_path_factory) -> dict[str, str]:
    clip = make_clip("tiny.mp4", **TINY)
    out = tmp_path_factory.mktemp("serial")
    report = run(clip, RunOptions(out_dir=out, layout="serial", save_every=5))
    return {name: task.frame_digest for name, task in report.tasks.items()}


def test_every_layout_is_registered_in_the_contract_suite() -> None:
    assert {variant[0] for variant in VARIANTS} == set(LAYOUTS)


@pytest.mark.parametrize(("layout", "method", "transport"), VARIANTS, ids=lambda v: str(v))
def test_every_layout_produces_serial_frames(
    layout: str,
    method: StartMethod,
    transport: Transport,
    tiny_clip: Path,
    tmp_path: Path,
    serial_digests,
) -> None:
    reporter = RecordingReporter()
    options = RunOptions(
        out_dir=tmp_path,
        layout=layout,
        start_method=method,
        transport=transport,
        save_every=5,
        workers=2,
    )
    report = run(tiny_clip, options, reporter)

    assert {n: t.frame_digest for n, t in report.tasks.items()} == serial_digests
    for name, task in report.tasks.items():
        output = tmp_path / task.output
        assert count_decoded_frames(output) == task.frames == 12
        assert probe(output).audio_codec == "aac", "the input's audio is kept"
        assert not list(tmp_path.glob("*.part"))
        # The save thread wrote a thumbnail every 5 frames and a final checkpoint.
        thumbs = sorted(p.name for p in (tmp_path / "thumbnails" / name).iterdir())
        assert thumbs == ["frame_000000.jpg", "frame_000005.jpg", "frame_000010.jpg"]
        checkpoint = json.loads((tmp_path / f"{name}.checkpoint.json").read_text())
        assert checkpoint["frames_done"] == 12 and checkpoint["complete"]
        assert checkpoint["output"] == task.output
        assert checkpoint["thumbnails"] == {
            "folder": f"thumbnails/{name}",
            "count": 3,
            "latest": "frame_000010.jpg",
        }
        # Progress: started, a final count equal to the frames, finished.
        hooks = [(hook, value) for hook, task_name, value in reporter.events if task_name == name]
        assert hooks[0] == ("task_started", 12)
        assert ("frames_done", 12) in hooks
        assert hooks[-1][0] == "task_finished"

    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["layout"] == layout
    assert saved["tasks"]["compress"]["frame_digest"] == serial_digests["compress"]
    assert saved["environment"]["start_method"] == method.value


def test_where_work_runs_matches_the_layout(tiny_clip: Path, tmp_path: Path) -> None:
    threads = run(tiny_clip, RunOptions(out_dir=tmp_path / "t", layout="threads"))
    assert len({t.pid for t in threads.tasks.values()}) == 1
    seen = {name for task in threads.tasks.values() for name in task.threads}
    assert {"task-compress", "task-render", "progress", "saver"} <= seen

    procs = run(tiny_clip, RunOptions(out_dir=tmp_path / "p", layout="processes"))
    pids = {t.pid for t in procs.tasks.values()}
    assert len(pids) == 2 and procs.processes[0].pid not in pids
    for task in procs.tasks.values():
        assert {"progress", "saver"} <= set(task.threads), "helpers run inside each task process"
    roles = [p.role for p in procs.processes]
    assert roles[0] == "main"
    assert {"task:compress", "task:render", "ffmpeg-encode:render"} <= set(roles)
    assert all(p.peak_rss_bytes > 0 for p in procs.processes)

    serial = run(tiny_clip, RunOptions(out_dir=tmp_path / "s", layout="serial"))
    # ffmpeg's stderr drains, and the run's stall watchdog (which only sleeps), aside.
    own = {t for t in serial.tasks["render"].threads if not t.startswith("stderr-")}
    assert own - {"watchdog"} == {"MainThread"}, "serial runs no helper thread"
