"""The prediction model's equations on constructed work (`pipeline.lab.model`)."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import ROOT

from pipeline.config.layout_file import FramePool, Placement
from pipeline.lab.forecast import reforecast
from pipeline.lab.ingredients import shape_for
from pipeline.lab.model import LAYOUTS, Machine, TaskWork, perfect, predict, shape_of

#: A machine whose fixed costs are small next to the work below.
FAST = Machine(cores=2, startup=0.05, copy_per_byte=1e-10, single_thread_encoder=True)


def render(stages: float = 10.0, share: float = 1.0, **kw: object) -> TaskWork:
    """A task whose stages take `stages` CPU-s, `share` of them serial under threads."""
    values: dict[str, object] = {
        "name": "render",
        "stage_cpu": {"animate": stages},
        "gil_share": share,
        "serial_share": share,
        "own": 0.1,
        "decode": 0.2,
        "encode": 0.5,
        "frames": 300,
        "frame_bytes": 2 * 160 * 120 * 3,
        "keyframes": tuple(range(10, 300, 10)),
    }
    return TaskWork(**{**values, **kw})  # type: ignore[arg-type]


def speedup(layout: str, tasks: list[TaskWork], m: Machine) -> float:
    serial = predict(tasks, shape_of("serial", tasks), m).seconds
    return serial / predict(tasks, shape_of(layout, tasks), m).seconds


def test_a_stage_holding_the_gil_gains_nothing_from_threads_on_any_cores() -> None:
    tasks = [render(share=1.0)]
    for cores in (2, 4, 16):
        m = dataclasses.replace(FAST, cores=cores)
        # hybrid puts the stages on threads: the GIL keeps them one at a time (only the
        # task thread's own 1% of pipe work overlaps them).
        assert speedup("hybrid", tasks, m) <= 1.02
        assert predict(tasks, shape_of("hybrid", tasks), m).limit == "the GIL"
        # Processes do not share a GIL: a pool of them does gain.
        assert speedup("pool", tasks, m) > 0.8 * cores


def test_a_gil_free_stage_scales_with_threads_up_to_the_cores() -> None:
    tasks = [render(share=0.0)]
    gains = {c: speedup("hybrid", tasks, dataclasses.replace(FAST, cores=c)) for c in (1, 2, 4, 8)}
    assert gains[1] <= 1.0
    assert gains[2] == pytest.approx(2 * gains[1], rel=0.1)
    assert gains[4] == pytest.approx(2 * gains[2], rel=0.1)
    assert gains[8] > gains[4]
    # More threads than cores do not help: the cores are the limit.
    crowded = dataclasses.replace(FAST, cores=2, workers=16)
    assert speedup("hybrid", tasks, crowded) == pytest.approx(gains[2], rel=0.05)


def test_amdahl_caps_threads_at_one_over_the_serial_share() -> None:
    tasks = [render(share=0.25)]
    many = dataclasses.replace(FAST, cores=64)
    assert speedup("hybrid", tasks, many) <= 1 / 0.25 + 1e-9
    assert speedup("hybrid", tasks, many) > 3


def test_a_convoy_makes_threads_slower_than_one_thread() -> None:
    # Two threads measured at 0.65x of one: Karp-Flatt's serial fraction 2 / 0.65 - 1 = 2.08.
    tasks = [render(share=0.7, serial_share=2 / 0.65 - 1)]
    for cores in (2, 8):
        m = dataclasses.replace(FAST, cores=cores)
        hybrid = predict(tasks, shape_of("hybrid", tasks), m)
        assert hybrid.limit == "the GIL" and "0.65x as fast as 1" in hybrid.why
        assert speedup("hybrid", tasks, m) < 0.7
        assert speedup("pool", tasks, m) > 0.8 * cores  # processes share no GIL
    # With the frames in one thread there is nobody to convoy with.
    assert speedup("threads", tasks, FAST) == pytest.approx(1.0, abs=0.05)


def test_start_up_dominates_a_short_clip() -> None:
    tasks = [render(stages=0.05, encode=0.02, decode=0.01, own=0.01, frames=10)]
    m = dataclasses.replace(FAST, startup=0.4)
    for layout in ("pool", "segments", "processes"):
        assert speedup(layout, tasks, m) < 1.0, layout
        assert predict(tasks, shape_of(layout, tasks), m).limit == "start-up", layout
    # The same work on a long clip: the pool wins.
    long = [render(stages=50.0)]
    assert speedup("pool", long, m) > 1.5


def test_a_stage_that_needs_frames_in_order_runs_in_one_worker() -> None:
    tasks = [render(share=0.0, frame_independent=False)]
    m = dataclasses.replace(FAST, cores=8)
    for layout in ("hybrid", "pool", "segments"):
        assert speedup(layout, tasks, m) <= 1.0, layout
    assert perfect(tasks, m).seconds == pytest.approx(
        predict(tasks, shape_of("serial", tasks), m).seconds
    )


def test_the_single_thread_encoder_bounds_every_layout_of_one_task() -> None:
    tasks = [render(stages=1.0, share=0.0, encode=8.0, keyframes=())]
    m = dataclasses.replace(FAST, cores=16)
    for layout in LAYOUTS:
        p = predict(tasks, shape_of(layout, tasks), m)
        assert p.seconds >= 8.0 and p.limit in ("the encoder", "start-up"), layout
    # Cut into segments at keyframes, the encoder's work is split too.
    cut = [dataclasses.replace(tasks[0], keyframes=tuple(range(30, 300, 30)))]
    assert predict(cut, shape_of("segments", cut), m).seconds < 2.0


def test_threads_of_one_process_share_one_gil_across_tasks() -> None:
    tasks = [render(share=1.0), dataclasses.replace(render(share=1.0), name="other")]
    m = dataclasses.replace(FAST, cores=8)
    threads = predict(tasks, shape_of("threads", tasks), m)
    processes = predict(tasks, shape_of("processes", tasks), m)
    assert threads.limit == "the GIL" and threads.seconds >= 20.0
    assert processes.seconds < 0.6 * threads.seconds


def test_no_layout_beats_the_perfect_layout() -> None:
    # Few keyframes too: then a pool splits the stages finer than segments can.
    mixes = [
        [render(share=s, encode=e, keyframes=k), dataclasses.replace(render(share=s), name="b")]
        for s in (0.0, 0.5, 1.0)
        for e in (0.5, 5.0)
        for k in (tuple(range(10, 300, 10)), (100, 200), ())
    ]
    for tasks in mixes:
        for cores in (1, 2, 4, 16):
            m = dataclasses.replace(FAST, cores=cores)
            best = perfect(tasks, m).seconds
            for layout in LAYOUTS:
                assert predict(tasks, shape_of(layout, tasks), m).seconds >= best - 1e-9


def test_a_layout_file_is_predicted_from_its_shape() -> None:
    tasks = [render(share=1.0)]
    shape = shape_for(str(ROOT / "examples" / "layouts" / "threads-everywhere.toml"), tasks)
    assert shape is not None and shape.tasks is Placement.THREADS
    assert shape.frames["render"].pool is FramePool.THREADS
    assert predict(tasks, shape, FAST).limit == "the GIL"
    assert shape_for("ray", tasks) is None


def test_predicting_again_from_a_forecasts_record_gives_the_same_figures() -> None:
    # 35538.15809532858 ns/MB is one of the copy costs that does not survive ns/MB -> s/B -> ns/MB.
    task = dataclasses.asdict(render())
    data = {
        "serial_wall_seconds": 1.0,
        "usable_cores": 2,
        "startup_seconds": 0.4,
        "copy_ns_per_mb": 35538.15809532858,
        "tasks": [task],
        "rows": [{"layout": name, "cores": 2} for name in ("threads", "pool", "segments")],
        "perfect": [],
    }
    first = reforecast(data).to_dict()
    assert first["copy_ns_per_mb"] == data["copy_ns_per_mb"]
    assert reforecast(first).to_dict() == first
