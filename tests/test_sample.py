"""The shipped sample, end to end, under every layout (the foundation's acceptance test)."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from conftest import SAMPLE

from pipeline import RunOptions, run
from pipeline.layouts import LAYOUTS
from pipeline.media import count_decoded_frames, probe

pytestmark = [pytest.mark.sample, pytest.mark.timeout(300)]


def test_every_layout_processes_the_sample_identically(tmp_path) -> None:
    source = probe(SAMPLE)
    frames = count_decoded_frames(SAMPLE)
    digests = {}
    for layout in LAYOUTS:
        out = tmp_path / layout
        report = run(SAMPLE, RunOptions(out_dir=out, layout=layout, save_every=100))
        digests[layout] = {name: task.frame_digest for name, task in report.tasks.items()}
        for task in report.tasks.values():
            output = out / task.output
            assert count_decoded_frames(output) == frames == task.frames == 377
            assert probe(output).fps == source.fps == Fraction(25, 2)
            assert len(list((out / "thumbnails" / task.name).glob("*.jpg"))) == 4
        assert probe(out / "compressed.mp4").audio_codec == "aac"
        saved = json.loads((out / "report.json").read_text())
        assert saved["wall_seconds"] > 0 and saved["input"]["video"]["fps"] == "25/2"
    assert all(d == digests["serial"] for d in digests.values()), digests
