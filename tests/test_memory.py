"""Memory is bounded: a run on a clip ten times longer peaks within 10% of the short one."""

from __future__ import annotations

import json

import pytest

from pipeline.layouts import LAYOUTS

pytestmark = pytest.mark.timeout(300)

# 640x360 frames are 0.69 MB in BGR: keeping every frame of the long clip would add ~370 MB,
# far beyond 10% of the run's total, so a leak per frame cannot hide in the noise. Keyframes
# every 10 frames give both clips the same number of segments.
CLIP = {"size": "640x360", "gop": 10}
SHORT, LONG = 60, 600


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_peak_memory_does_not_grow_with_video_length(layout, cli, make_clip, tmp_path) -> None:
    # Through the command line: every run is a fresh process tree, so each process's peak
    # resident memory is that run's alone.
    peaks = {}
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
    assert peaks[LONG] <= peaks[SHORT] * 1.10, peaks
