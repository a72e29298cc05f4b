"""Memory is bounded: a run on a clip ten times longer peaks within 10% of the short one; and
what is measured is each process's own."""

from __future__ import annotations

import json
import multiprocessing
import re
import sys

import numpy as np
import pytest

from pipeline.instrument.procstats import ProcessStats, concurrent_peak, peak_rss_now, self_stats
from pipeline.layouts import LAYOUTS
from pipeline.media.ffmpeg import FFmpegProcess

pytestmark = pytest.mark.timeout(300)

# 640x360 frames are 0.69 MB in BGR: keeping every frame of the long clip would add ~370 MB,
# far beyond 10% of the run's total, so a leak per frame cannot hide in the noise. Keyframes
# every 10 frames give both clips the same number of segments.
CLIP = {"size": "640x360", "gop": 10}
SHORT, LONG = 60, 600


# The ray layout sends each segment's packets and brings its encoded piece back as whole
# objects, so its memory grows with a segment's length by design (docs/cluster.md).
@pytest.mark.parametrize("layout", [name for name in LAYOUTS if name != "ray"])
def test_peak_memory_does_not_grow_with_video_length(layout, cli, make_clip, tmp_path) -> None:
    # Through the command line: every run is a fresh process tree, so each process's peak
    # resident memory is that run's alone.
    peaks, largest = {}, {}
    for frames in (SHORT, LONG):
        clip = make_clip("memory.mp4", frames=frames, **CLIP)
        out = tmp_path / str(frames)
        done = cli.run(
            "run",
            clip,
            "--out",
            out,
            "--layout",
            layout,
            "--workers",
            "2",
            "--save-every",
            "10",
            "--particles",
            "20",
            "--glow",
            "1",
        )
        assert done.returncode == 0, done.stderr
        report = json.loads((out / "report.json").read_text())
        assert report["tasks"]["render"]["frames"] == frames
        peaks[frames] = report["peak_rss_bytes_total"]
        largest[frames] = _largest_by_role(report["processes"])
    # A leak per frame shows in the process that leaks: no role's largest peak grows by more
    # than a tenth of the short run's total (the join's ffmpeg holds a little per piece).
    for role, peak in largest[LONG].items():
        assert peak - largest[SHORT].get(role, peak) <= peaks[SHORT] * 0.10, (role, largest)
    # The total sums the processes alive together. On a busy machine a finished process may be
    # reaped after its successor started, so the longer run, with more processes one after the
    # other, may count one more of them as alive together: that much is allowed, not more.
    one_more = max(largest[LONG].values())
    assert peaks[LONG] <= peaks[SHORT] * 1.10 + one_more, (peaks, largest)


def _largest_by_role(processes: list[dict]) -> dict[str, int]:  # type: ignore[type-arg]
    # Roles carry a segment's or a worker's number; the kind of process is what compares.
    largest: dict[str, int] = {}
    for p in processes:
        role = re.sub(r"\d+", "N", p["role"])
        largest[role] = max(largest.get(role, 0), p["peak_rss_bytes"])
    return largest


def test_peak_memory_counts_only_processes_alive_together() -> None:
    def proc(mb: int, started: float, ended: float) -> ProcessStats:
        return ProcessStats(1, "p", 0.0, mb << 20, started=started, ended=ended)

    one_after_another = [proc(100, 1, 2), proc(100, 2, 3), proc(100, 3, 4)]
    assert concurrent_peak(one_after_another) == 100 << 20
    overlapping = [proc(100, 1, 3), proc(50, 2, 4), proc(30, 3.5, 5)]
    assert concurrent_peak(overlapping) == 150 << 20
    assert concurrent_peak([*overlapping, proc(7, 0, 0)]) == 157 << 20  # times unknown: always


def test_a_pieced_run_peaks_like_a_one_piece_run(cli, make_clip, tmp_path) -> None:
    clip = make_clip("pieces.mp4", size="320x240", frames=120, gop=10)
    peaks = {}
    for every in (0, 10):
        out = tmp_path / str(every)
        args = ("--layout", "serial", "--tasks", "compress", "--segment-frames", str(every))
        done = cli.run("run", clip, "--out", out, *args, "--no-progress")
        assert done.returncode == 0, done.stderr
        report = json.loads((out / "report.json").read_text())
        peaks[every] = report["peak_rss_bytes_total"]
        # main, a transcoding ffmpeg per piece (compress has no stage), and the joining
        # ffmpeg for 12 pieces
        assert len(report["processes"]) == (2 if every == 0 else 2 + 12)
    assert peaks[10] < 1.2 * peaks[0], peaks


BALLAST = 400 << 20  # bytes this process holds while it starts children


def _report_own_peak(queue: multiprocessing.Queue) -> None:
    queue.put(self_stats("worker").peak_rss_bytes)


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/<pid>/status: Linux")
def test_a_child_reports_its_own_peak_memory_not_its_parents() -> None:
    ballast = np.ones(BALLAST, dtype=np.uint8)  # resident: every page written
    assert peak_rss_now() > BALLAST
    # An ffmpeg child that lives about a second (-re: input read at its own 25 frames/s).
    proc = FFmpegProcess(
        [
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-frames:v",
            "25",
            "-f",
            "null",
            "-",
        ],
        role="test",
        stdin=False,
        stdout=False,
    )
    assert proc.wait() == 0, proc.stderr_tail()
    assert proc.stats is not None and 0 < proc.stats.peak_rss_bytes < BALLAST // 2
    # A spawned worker: a fresh interpreter, whose ru_maxrss would start at our peak.
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_report_own_peak, args=(queue,))
    worker.start()
    own = queue.get(timeout=60)
    worker.join()
    assert 0 < own < BALLAST // 2
    del ballast
