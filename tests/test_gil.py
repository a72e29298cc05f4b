"""Every run measures where each stage's time went: on a CPU, waiting for a core, or blocked
(in a stage without I/O: waiting for the GIL), and shows it in the report and the trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.lab.gilmeter import gil_share
from pipeline.lab.stagecheck import generated_frames
from pipeline.layouts import LAYOUTS
from pipeline.stages.base import PixelFormat, StreamSpec

#: The gil-bound workload: each frame's pure-Python work dwarfs its OpenCV work.
GIL_BOUND = ("--workload", "gil-bound", "--tasks", "render", "--workers", "2")


def _render(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((out / "report.json").read_text())["tasks"]["render"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def gil_clip(make_clip):  # type: ignore[no-untyped-def]
    return make_clip("gil.mp4", size="320x240", frames=40)


@pytest.mark.parametrize("layout", [name for name, info in LAYOUTS.items() if not info.extra])
def test_every_layout_reports_where_each_stage_spent_its_time(layout, cli, tiny_clip, tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    done = cli.run("run", tiny_clip, "--out", out, "--layout", layout, "--workers", "2")
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    render = report["tasks"]["render"]["cpu_breakdown"]
    assert {"to-bgr", "animate", "to-i420", "digest", "saves"} <= set(render)
    assert set(report["tasks"]["compress"]["cpu_breakdown"]) >= {"digest", "saves"}
    for spent in render.values():
        assert set(spent) == {"on_cpu", "waiting_for_core", "blocked"}
        assert spent["on_cpu"] >= 0 and spent["blocked"] >= 0
        assert spent["waiting_for_core"] is not None and spent["waiting_for_core"] >= 0
    animate = render["animate"]
    total = animate["on_cpu"] + animate["waiting_for_core"] + animate["blocked"]
    seconds = report["tasks"]["render"]["timings"]["stage animate"]
    assert total == pytest.approx(seconds, rel=0.02, abs=1e-3), "the three add up to its time"


@pytest.mark.timeout(180)
def test_animate_waits_for_the_gil_only_where_threads_share_it(cli, gil_clip, tmp_path) -> None:
    blocked = {}
    for layout in ("serial", "hybrid", "pool"):
        out = tmp_path / layout
        done = cli.run("run", gil_clip, "--out", out, "--layout", layout, *GIL_BOUND)
        assert done.returncode == 0, done.stderr
        animate = _render(out)["cpu_breakdown"]["animate"]
        # Of the time it was not waiting for a core: other processes busy on the cores lengthen
        # the waits for one, and while a thread holding the GIL waits for a core, the other
        # stays blocked on the GIL all the same, so this share does not fall on a busy machine.
        blocked[layout] = animate["blocked"] / (animate["on_cpu"] + animate["blocked"])
    # Generous margins: the machine is shared. Two threads of pure Python take turns: each waits
    # about half its time; alone in its thread or process, a stage waits for nobody.
    assert blocked["hybrid"] > 0.25, blocked
    assert blocked["serial"] < 0.15 and blocked["pool"] < 0.15, blocked


@pytest.mark.parametrize(("blocked", "named"), [(0.3, True), (0.1, False)])
def test_the_verdict_names_the_gil_from_a_quarter_of_a_stage_blocked(blocked, named) -> None:
    from fractions import Fraction

    from pipeline.report.results import CpuBreakdown, TaskResult

    task = TaskResult(
        "render", 10, 1.0, "rendered.mp4", "", 1, [], ["animate"], "bgr24", 32, 32,
        Fraction(25), 1, 1, None, None, 0, stage_seconds={"animate": 1.0},
        cpu_breakdown={"animate": CpuBreakdown(1.0 - blocked, 0.0, blocked)},
    )  # fmt: skip
    assert ("animate waited for the GIL" in task.verdict()) is named, task.verdict()


def test_the_trace_shows_each_stage_span_and_ffmpeg_working(cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "out"
    done = cli.run("run", tiny_clip, "--out", out, "--layout", "processes", "--trace")
    assert done.returncode == 0, done.stderr
    events = json.loads((out / "trace.json").read_text())["traceEvents"]
    stages = [e for e in events if e["ph"] == "X" and e.get("cat") == "stage"]
    assert stages and all(
        {"on_cpu_ns", "waiting_ns", "blocked_ns", "frame"} <= set(e["args"]) for e in stages
    )
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert any(name.startswith("ffmpeg writing rendered.mp4") for name in names), names
    counters = {e["name"] for e in events if e["ph"] == "C"}
    assert {"CPU (cores)", "cores busy"} <= counters


def test_check_stage_measures_how_much_a_stage_holds_the_gil() -> None:
    import cv2
    from stages_for_tests import BurnCpu

    class Blur(BurnCpu):
        def process(self, frame, index):  # type: ignore[no-untyped-def]
            for _ in range(3):
                frame = cv2.GaussianBlur(frame, (0, 0), 3)
            return frame

    spec = StreamSpec(320, 240, __import__("fractions").Fraction(25))
    frames = generated_frames(320, 240, 8, PixelFormat.BGR24)
    cv2.setNumThreads(1)
    shares = {}
    for name, stage in (("python", BurnCpu(0.003)), ("opencv", Blur(0))):
        stage.setup(spec)
        shares[name] = max(gil_share(stage, spec, frames) for _ in range(3))
    assert shares["python"] > shares["opencv"] + 0.3, shares
