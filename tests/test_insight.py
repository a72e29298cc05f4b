"""What a run tells about itself: phase timings, the bottleneck, the trace, workload presets."""

from __future__ import annotations

import json

import pytest

from pipeline import AnimationSettings, ConfigError, RunOptions, run
from pipeline.config.workloads import WORKLOADS, apply_workload


@pytest.mark.parametrize("layout", ["threads", "pool", "segments"])
def test_trace_json_is_a_valid_timeline_of_every_process(layout, tiny_clip, tmp_path) -> None:
    report = run(tiny_clip, RunOptions(out_dir=tmp_path, layout=layout, workers=2, trace=True))
    trace = json.loads((tmp_path / "trace.json").read_text())
    events = trace["traceEvents"]
    assert all({"name", "ph", "pid"} <= e.keys() for e in events)
    spans = [e for e in events if e["ph"] == "X"]
    assert all(e["dur"] >= 0 and isinstance(e["ts"], float) and "tid" in e for e in spans)
    names = {e["name"] for e in spans}
    assert {"decode", "encode", "digest", "animate"} <= names
    processes = {e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert any(p.startswith("main") for p in processes)
    traced_pids = {e["pid"] for e in spans}
    task_pids = {t.pid for t in report.tasks.values()}
    if layout != "segments":  # segment workers are not the task's pid (the parent is)
        assert task_pids <= traced_pids
    if layout == "pool":
        assert sum(p.startswith("pool worker") for p in processes) == 2
        assert any(e["ph"] == "C" and e["name"] == "frames in pool" for e in events)
    assert not (tmp_path / ".vidpipe" / "trace").exists()


def test_no_trace_unless_asked(tiny_clip, tmp_path) -> None:
    run(tiny_clip, RunOptions(out_dir=tmp_path, layout="serial"))
    assert not (tmp_path / "trace.json").exists()


def test_timings_account_for_the_task_and_name_its_bottleneck(tiny_clip, tmp_path) -> None:
    heavy = AnimationSettings(particles=0, glow=40)  # the stage must dominate, even on 12 frames
    report = run(tiny_clip, RunOptions(out_dir=tmp_path, layout="serial", animation=heavy))
    render = report.tasks["render"]
    assert set(render.timings) >= {"decode", "stage animate", "digest", "encode", "saves"}
    assert sum(render.timings.values()) <= render.seconds * 1.01
    phase, share = render.bottleneck()
    assert phase == "stage animate" and 0 < share <= 1


def test_workload_presets_set_the_animation_unless_given_explicitly(tmp_path) -> None:
    options = RunOptions(out_dir=tmp_path)
    bound = apply_workload(options, "gil-bound", set())
    assert bound.animation.particles == WORKLOADS["gil-bound"].particles
    assert bound.animation.glow == 0
    assert bound.animation.samples == WORKLOADS["gil-bound"].samples > 1
    assert bound.encoder.preset == "ultrafast"  # the encoders' share kept small
    kept = apply_workload(options, "gil-bound", {"particles", "preset"})
    assert kept.animation.particles == options.animation.particles
    assert kept.encoder.preset == options.encoder.preset
    assert apply_workload(options, "io", set()).save_every == 1
    assert apply_workload(options, "io", set()).encoder.preset == options.encoder.preset
    with pytest.raises(ConfigError, match="unknown workload"):
        apply_workload(options, "nope", set())


def test_cli_workloads_lists_the_presets(cli) -> None:
    done = cli.run("workloads")
    assert [line.split()[0] for line in done.stdout.splitlines()] == list(WORKLOADS)


def test_samples_average_each_particle_over_the_frame_without_drawing_more(
    cli, tiny_clip, tmp_path
) -> None:
    from fractions import Fraction

    from pipeline.stages import Animate, StreamSpec

    spec = StreamSpec(320, 240, Fraction(25))
    one, four = Animate(particles=50, samples=1), Animate(particles=50, samples=4)
    one.setup(spec)
    four.setup(spec)
    assert len(four.positions(7)) == len(one.positions(7)) == 50
    assert four.positions(0) != one.positions(0)  # a mean over the frame, not its first instant
    assert "samples=4" in four.describe()
    with pytest.raises(ValueError, match="samples must be a whole number, 1 or more"):
        Animate(samples=0)
    done = cli.run("run", tiny_clip, "--out", tmp_path, "--samples", "0")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --samples must be between 1 and 10000, got 0"
