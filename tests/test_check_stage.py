"""`vidpipe check-stage`: finds the broken rules, and measures whether a stage releases the GIL."""

from __future__ import annotations

import json

import pytest

from pipeline.config.settings import usable_cores

TWO_CORES = pytest.mark.skipif(usable_cores() < 2, reason="the GIL needs 2 cores to show")


def _check(cli, stage: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def, type-arg]
    done = cli.run("check-stage", stage, "--json", "--frames", "12")
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


@TWO_CORES
def test_a_stage_that_holds_the_gil_is_recommended_processes(cli) -> None:
    code, report = _check(cli, "animate:particles=2000,glow=0")  # positions in pure Python
    assert code == 0 and report["ok"]
    if report["unclear_here"]:  # the cores were busy: the lab says so rather than guess
        assert report["releases_gil"] is None and "unclear on this machine" in report["reason"]
        return
    assert report["releases_gil"] is False and report["recommendation"] == "processes"


@TWO_CORES
def test_a_stage_that_releases_the_gil_is_recommended_threads(cli) -> None:
    code, report = _check(cli, "animate:particles=0,glow=6")  # OpenCV blurs
    assert code == 0 and report["ok"]
    if report["unclear_here"]:  # the cores were busy: the lab says so rather than guess
        assert report["releases_gil"] is None and "unclear on this machine" in report["reason"]
        return
    assert report["releases_gil"] is True and report["recommendation"] == "threads"


def test_a_well_behaved_stage_passes_every_check(cli) -> None:
    code, report = _check(cli, "examples/stages/sepia.py:Sepia:strength=0.5")
    assert code == 0
    assert report["picklable"] and report["deterministic"]
    assert report["order_independent"] and report["thread_safe"]
    assert report["problems"] == []


@pytest.mark.parametrize(
    ("stage", "broken", "words"),
    [
        ("tests.stages_for_tests:SharedRacy", "thread_safe", "share what the module"),
        ("tests.stages_for_tests:Counter", "order_independent", "in another order"),
        ("tests.stages_for_tests:Noisy", "deterministic", "not deterministic"),
        ("tests.stages_for_tests:Unpicklable", "picklable", "not picklable"),
    ],
)
def test_a_stage_that_breaks_a_rule_fails_the_check_naming_it(cli, stage, broken, words) -> None:
    code, report = _check(cli, stage)
    assert code == 1 and not report["ok"]
    assert report[broken] is False
    assert any(words in problem for problem in report["problems"]), report["problems"]


def test_instance_state_is_safe_because_each_thread_has_its_own_copy(cli) -> None:
    code, report = _check(cli, "tests.stages_for_tests:Racy")  # keeps its frame in self
    assert code == 0 and report["thread_safe"] is True, report["problems"]


def test_a_stage_with_state_is_checked_in_order_only(cli) -> None:
    code, report = _check(cli, "tests.stages_for_tests:Trail")
    assert code == 0
    assert report["frame_independent"] is False
    assert report["order_independent"] is None and report["thread_safe"] is None


def test_the_text_report_ends_with_a_verdict(cli) -> None:
    done = cli.run("check-stage", "tests.stages_for_tests:Noisy", "--frames", "4")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("stage ") and lines[-1] == "verdict: NOT safe"
    assert any(line.startswith("problem: not deterministic") for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere.py:X"], "stage file nowhere.py: no such file"),
        (["warp"], "'warp' is neither a built-in stage"),
        (["resize:height=40", "--size", "big"], "--size must be WIDTHxHEIGHT"),
        (["resize:height=40", "--frames", "1"], "--frames must be between 2 and 1000"),
    ],
)
def test_a_bad_check_stage_call_is_one_error_line(cli, args, message) -> None:
    done = cli.run("check-stage", *args)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_stage_that_raises_is_one_error_line_naming_it(cli) -> None:
    done = cli.run("check-stage", "tests.stages_for_tests:FailAt:at=3")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: stage fail-at failed on generated 320x240 frames: ValueError: bad frame 3"
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--frames", "100000000"], "--frames must be between 2 and 1000"),
        (["--size", "100000x100000"], "--size must be at most 8192x8192"),
        (["--size", "8193x2"], "--size must be at most 8192x8192"),
        (["--size", "8000x8000", "--frames", "100"], "check-stage keeps at most 1 GB"),
    ],
)
def test_check_stage_refuses_more_frames_than_it_can_hold(args, words, cli) -> None:
    done = cli.run("check-stage", "resize:height=10", *args, timeout=20)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and words in done.stderr


def test_the_untouched_template_is_called_too_cheap_to_measure(cli) -> None:
    code, report = _check(cli, "exercises/template_stage.py:MyStage")
    assert code == 0 and report["ok"]
    assert report["recommendation"] == "either" and "too cheap to measure" in report["reason"]
    assert report["releases_gil"] is None and report["speedup_2_threads"] is None


def test_a_stage_that_is_not_thread_safe_is_never_recommended_threads(cli) -> None:
    code, report = _check(cli, "tests.stages_for_tests:SharedRacy")
    assert code == 1 and report["thread_safe"] is False
    assert report["recommendation"] == "processes", report["reason"]


@pytest.mark.parametrize(
    ("stage", "words"),
    [
        ("tests.stages_for_tests:Returns:kind='none',at=0", "returned NoneType, not a frame"),
        ("tests.stages_for_tests:Returns:kind='float32',at=0", "returned a float32 array"),
        ("tests.stages_for_tests:WrongOnI420", "returned a float64 array"),
    ],
)
def test_frames_a_run_would_refuse_fail_the_check_in_one_line(cli, stage, words) -> None:
    done = cli.run("check-stage", stage, "--frames", "4")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: stage ") and words in lines[0]
    assert "a run fails on such a frame" in lines[0]


def test_every_pixel_format_the_stage_accepts_is_tried(cli) -> None:
    code, report = _check(cli, "tests.stages_for_tests:Unchanged")
    assert code == 0 and report["pix_fmt"] == "bgr24, yuv420p"
    done = cli.run("check-stage", "tests.stages_for_tests:WrongOnI420", "--frames", "4")
    assert "yuv420p" in done.stderr  # BGR frames pass; the I420 ones it also accepts do not


def test_a_speedup_two_threads_cannot_give_is_measured_again_and_left_out(monkeypatch) -> None:
    from pipeline.config.settings import StageSpec
    from pipeline.lab import gilmeter, stagecheck

    calls = []

    def noisy(*args, **kwargs) -> gilmeter.Speedup:  # type: ignore[no-untyped-def]
        calls.append(1)
        return gilmeter.Speedup(10.19, 1.9)

    monkeypatch.setattr(gilmeter, "speedup", noisy)
    monkeypatch.setattr(stagecheck, "usable_cores", lambda: 2)
    report = stagecheck.check_stage(StageSpec("animate", (("particles", 0), ("glow", 2))), count=4)
    assert len(calls) == 1 + stagecheck.REMEASURES
    assert report.speedup_2_threads is None and report.recommendation == "either"
    assert any("10.19x" in note and "noise" in note for note in report.notes)


def _verdict(
    share: float, stage: float, machine: float, busy: float = 0.0
) -> tuple[str, bool | None]:
    from pipeline.lab import stagecheck

    speed = stagecheck._Speed(0.01, stage, share, machine, busy)
    recommendation, _, releases = stagecheck._recommend(speed, True, True, True)
    return recommendation, releases


@pytest.mark.parametrize(
    ("share", "stage", "machine", "verdict"),
    [
        (0.05, 1.85, 1.9, ("threads", True)),  # a quiet machine, a GIL-free stage
        (0.65, 1.5, 1.8, ("threads", True)),  # Python between OpenCV calls, still gaining
        (1.0, 0.98, 1.9, ("processes", False)),  # pure Python
        (0.05, 1.15, 1.2, ("either", None)),  # busy cores: even hashing gained 1.2x
        (1.0, 0.95, 1.1, ("either", None)),  # busy cores: not called "holds it" either
        (0.7, 1.3, 1.9, ("either", None)),  # partly
        (0.05, 1.0, 1.9, ("either", None)),  # the two measurements disagree
    ],
)
def test_the_verdict_reads_the_stage_against_what_the_machine_could_show(
    share, stage, machine, verdict
) -> None:
    assert _verdict(share, stage, machine) == verdict


def test_no_verdict_while_other_processes_keep_the_cores_busy() -> None:
    assert _verdict(0.05, 1.85, 1.9, busy=0.1) == ("threads", True)
    assert _verdict(0.05, 1.85, 1.9, busy=1.4) == ("either", None)
    assert _verdict(1.0, 0.98, 1.9, busy=1.4) == ("either", None)
