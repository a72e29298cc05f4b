"""`vidpipe compare`: run layouts side by side on one input and tell which wins, and why.

Each layout runs `repeat` times, interleaved (A B C A B C ...) so that the drift of a shared
machine hits all alike. Every run is `vidpipe run` in a fresh process tree, so its peak memory
is its own. Hidden parallelism is pinned so the layout is the only variable: x264 and OpenCV get
one thread each and BLAS libraries one thread (all recorded). The serial layout always runs, as
the reference: a layout whose frame digests differ from serial's is marked, and fails the
comparison once its table and charts are out. The last
round runs with `--trace`, for the timeline.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.supervisor import die_with_parent
from ..errors import ConfigError, Interrupted, OutputConflict, PipelineError
from ..plan.manifest import foreign_files
from ..plan.outdir import atomic_write_bytes
from ..report.results import CPU_PHASES, TaskResult

if TYPE_CHECKING:
    from .forecast import Forecast

__all__ = ["Forecaster", "LayoutSummary", "Run", "compare", "repredict", "results_markdown"]

#: Environment that keeps numerical libraries to one thread in every process of a run.
PINNED_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: Options that keep x264 and OpenCV to one thread, unless the caller sets them.
PINNED_OPTIONS = {"--encoder-threads": "1", "--opencv-threads": "1"}


@dataclass(frozen=True)
class Run:
    """One run of one layout, as measured by its report."""

    layout: str
    round: int
    wall_seconds: float
    frames: int
    cpu_seconds: float
    peak_rss_bytes: int
    digests: dict[str, str]
    bottlenecks: dict[str, tuple[str, float]]
    traced: bool
    out_dir: str
    #: Where each task's time went, in words (`TaskResult.verdict`).
    verdicts: dict[str, str] = field(default_factory=dict)
    #: The share of all stages' time (every task's) spent blocked: waiting for the GIL.
    gil_wait: float = 0.0
    #: Tasks whose frames the layout ran in order where it would have spread them, and why.
    in_order: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LayoutSummary:
    """Medians over a layout's runs, and how they compare with serial."""

    layout: str
    runs: int
    wall_seconds: float
    frames_per_second: float
    speedup: float
    cpu_percent: float
    peak_rss_bytes: int
    efficiency: float
    bottlenecks: dict[str, tuple[str, float]] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    gil_wait: float = 0.0
    #: The model's speedup from serial's run (`compare --predict`); None when not predicted.
    predicted_speedup: float | None = None
    #: What the model says limits the layout, and why.
    predicted_limit: str | None = None
    #: Tasks whose frames differ from serial's in some run: the speedup compares other work.
    frames_differ: list[str] = field(default_factory=list)
    #: Tasks whose frames the layout ran in order where it would have spread them, and why.
    in_order: dict[str, str] = field(default_factory=dict)

    @property
    def prediction_error(self) -> float | None:
        """(predicted - measured) / measured speedup, when predicted."""
        if self.predicted_speedup is None:
            return None
        return (self.predicted_speedup - self.speedup) / self.speedup


#: Makes predictions from the report of a serial run (`pipeline.lab.forecast`).
Forecaster = Callable[[dict[str, Any]], "Forecast"]


#: Seconds a run gets to clean up after compare is interrupted, before it is killed.
STOP_GRACE = 5.0


def _run_once(
    source: Path, layout: str, out: Path, options: list[str], trace: bool
) -> dict[str, Any]:
    """One `vidpipe run`, in a process tree of its own; its report.

    Paths go as absolute paths (a name like `-dash.mp4` is not an option then). When compare is
    interrupted, the run is asked to stop as a terminal would (SIGINT, or the SIGTERM compare
    got) and given `STOP_GRACE` seconds to clean up before it is killed. A run's usage error
    (exit 2) is compare's usage error; any other failure names the layout.
    """
    args = [sys.executable, "-m", "pipeline", "run", str(source.absolute())]
    args += ["--out", str(out.absolute()), "--layout", layout, "--no-progress", *options]
    if trace:
        args.append("--trace")
    env = {**os.environ, **PINNED_ENV}
    with subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # a terminal's Ctrl-C reaches compare, which passes it on once
        preexec_fn=die_with_parent,  # prctl only: safe between fork and exec
    ) as child:
        try:
            _, stderr = child.communicate()
        except BaseException as exc:
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            child.send_signal(signum)
            try:
                child.communicate(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                child.kill()
            raise
    if child.returncode in (130, 143):
        raise Interrupted(child.returncode - 128)
    if child.returncode == 2:
        raise ConfigError(f"layout '{layout}': {stderr.strip().removeprefix('error: ')}")
    if child.returncode != 0:
        raise PipelineError(f"layout '{layout}' failed: {stderr.strip()}")
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return report


def _gil_wait(tasks: Iterable[TaskResult]) -> float:
    """The share of every stage's time, summed over tasks, spent blocked (`CpuBreakdown`)."""
    stages = [
        spent for t in tasks for name, spent in t.cpu_breakdown.items() if name not in CPU_PHASES
    ]
    wall = sum(s.wall for s in stages)
    return sum(s.blocked for s in stages) / wall if wall > 0 else 0.0


def _to_run(layout: str, round_: int, report: dict[str, Any], traced: bool, out: Path) -> Run:
    tasks = {name: TaskResult.from_dict(name, data) for name, data in report["tasks"].items()}
    return Run(
        layout=layout,
        round=round_,
        wall_seconds=report["wall_seconds"],
        frames=sum(t.frames for t in tasks.values()),
        cpu_seconds=sum(p["cpu_seconds"] for p in report["processes"]),
        peak_rss_bytes=report["peak_rss_bytes_total"],
        digests={name: t.frame_digest for name, t in tasks.items()},
        bottlenecks={name: t.bottleneck() for name, t in tasks.items()},
        verdicts={name: t.verdict() for name, t in tasks.items()},
        gil_wait=_gil_wait(tasks.values()),
        in_order={name: t.in_order for name, t in tasks.items() if t.in_order},
        traced=traced,
        out_dir=str(out),
    )


def _predicted(summaries: list[LayoutSummary], forecast: Forecast) -> list[LayoutSummary]:
    """The summaries with `forecast`'s predictions for this machine (None where it has none)."""
    out = []
    for summary in summaries:
        row = forecast.row(summary.layout, forecast.usable_cores)
        speedup, limit = (row.speedup, row.limit) if row else (None, None)
        out.append(replace(summary, predicted_speedup=speedup, predicted_limit=limit))
    return out


def _recorded(forecast: Forecast) -> dict[str, Any]:
    """What results.json records of a forecast: the perfect layout here, and all of it."""
    perfect = next(r for r in forecast.perfect if r.cores == forecast.usable_cores)
    return {"perfect": asdict(perfect), "forecast": forecast.to_dict()}


def _forecast(
    summaries: list[LayoutSummary], runs: list[Run], forecaster: Forecaster
) -> tuple[list[LayoutSummary], dict[str, Any]]:
    """The summaries with the predictions made from serial's median run, and what
    results.json records of them: the perfect layout on this machine and the forecast."""
    serial = next(s for s in summaries if s.layout == "serial")
    median = min(
        (r for r in runs if r.layout == "serial"),
        key=lambda r: abs(r.wall_seconds - serial.wall_seconds),
    )
    forecast = forecaster(json.loads((Path(median.out_dir) / "report.json").read_text()))
    return _predicted(summaries, forecast), _recorded(forecast)


def repredict(out_dir: Path) -> list[LayoutSummary]:
    """Make the predictions of the comparison in `out_dir` (made with `--predict`) again, with
    the model as it is now, from the ingredients its `results.json` recorded; rewrite its
    `results.json` and `results.md` with them (the caller redraws the charts). The
    measurements are left as they were."""
    from .forecast import reforecast

    path = out_dir / "results.json"
    results = json.loads(path.read_text())
    forecast = reforecast(results["forecast"])
    summaries = _predicted([LayoutSummary(**s) for s in results["summaries"]], forecast)
    results |= {**_recorded(forecast), "summaries": [asdict(s) for s in summaries]}
    atomic_write_bytes(path, (json.dumps(results, indent=2) + "\n").encode())
    atomic_write_bytes(out_dir / "results.md", results_markdown(summaries, results).encode())
    return summaries


def _summaries(runs: list[Run], cores: int) -> list[LayoutSummary]:
    by_layout: dict[str, list[Run]] = {}
    for run in runs:
        by_layout.setdefault(run.layout, []).append(run)
    serial_wall = statistics.median(r.wall_seconds for r in by_layout["serial"])
    reference = by_layout["serial"][0].digests
    out = []
    for layout, rs in by_layout.items():
        wall = statistics.median(r.wall_seconds for r in rs)
        speedup = serial_wall / wall
        median_run = min(rs, key=lambda r: abs(r.wall_seconds - wall))
        out.append(
            LayoutSummary(
                layout=layout,
                runs=len(rs),
                wall_seconds=wall,
                frames_per_second=statistics.median(r.frames / r.wall_seconds for r in rs),
                speedup=speedup,
                cpu_percent=statistics.median(
                    100 * r.cpu_seconds / (r.wall_seconds * cores) for r in rs
                ),
                peak_rss_bytes=int(statistics.median(r.peak_rss_bytes for r in rs)),
                efficiency=speedup / cores,
                bottlenecks=median_run.bottlenecks,
                verdicts=median_run.verdicts,
                gil_wait=statistics.median(r.gil_wait for r in rs),
                frames_differ=sorted(
                    {t for r in rs for t, digest in r.digests.items() if digest != reference.get(t)}
                ),
                in_order={t: why for r in rs for t, why in r.in_order.items()},
            )
        )
    return out


def results_markdown(summaries: list[LayoutSummary], meta: dict[str, Any]) -> str:
    """The comparison as a Markdown table, with the setup it was measured in."""
    env = meta["environment"]
    predicted = any(s.predicted_speedup is not None for s in summaries)
    pins = ", ".join(f"{k} {v}" for k, v in meta["pinned"].items())
    lines = [
        f"# Layouts compared on `{Path(meta['input']).name}`",
        "",
        f"{meta['repeat']} runs per layout, interleaved; medians. Machine: {env['cpu_count']} "
        f"CPUs ({env['usable_cores']} usable), Python {env['python']} "
        f"(GIL {'enabled' if env['gil_enabled'] else 'disabled'}), ffmpeg {env['ffmpeg']}, "
        f"OpenCV {env['opencv']}. Pinned: {pins}.",
        "",
        "| layout | wall s | frames/s | speedup | "
        + ("predicted | error | " if predicted else "")
        + "CPU % | peak MB | efficiency | GIL wait | where the time went |",
        "| --- " * (11 if predicted else 9) + "|",
    ]
    for s in summaries:
        verdicts = "; ".join(f"{task}: {verdict}" for task, verdict in s.verdicts.items())
        name = f"{s.layout} **(frames differ)**" if s.frames_differ else s.layout
        forecast = ""
        if predicted:
            error = s.prediction_error
            forecast = (
                "- | - | "
                if s.predicted_speedup is None or error is None
                else f"{s.predicted_speedup:.2f}x ({s.predicted_limit}) | {error:+.0%} | "
            )
        lines.append(
            f"| {name} | {s.wall_seconds:.2f} | {s.frames_per_second:.1f} | "
            f"{s.speedup:.2f}x | {forecast}{s.cpu_percent:.0f} | {s.peak_rss_bytes / 1e6:.0f} | "
            f"{s.efficiency:.0%} | {s.gil_wait:.0%} | {verdicts} |"
        )
    lines += [
        "",
        "speedup = serial's median wall time / the layout's; CPU % = CPU seconds of every "
        "process / (wall seconds x usable cores); efficiency = speedup / usable cores; "
        "peak MB = peak resident memory summed over the processes alive together; "
        "GIL wait = the share of the stages' time (every thread and process that ran them) "
        "spent blocked, not on a CPU nor waiting for one: waiting for the GIL; where the time "
        "went = each task's bottleneck, or the stage that waited for the GIL most of its time"
        + (
            "; predicted = the model's speedup from serial's run (`vidpipe predict`), with "
            "the limit it names; error = (predicted - measured) / measured."
            if predicted
            else "."
        ),
        "",
    ]
    lines += _explained(summaries)
    if "perfect" in meta:
        lines += [_perfect_line(summaries, meta), ""]
    return "\n".join(lines)


def _explained(summaries: list[LayoutSummary]) -> list[str]:
    """Lines under the table: layouts whose frames differ from serial's, and tasks a layout
    ran in order where it would have spread their frames."""
    lines = []
    for s in summaries:
        if s.frames_differ:
            lines.append(
                f"- **{s.layout}: frames differ from serial's** (task "
                f"{', '.join(repr(t) for t in s.frames_differ)}): its speedup compares other "
                "work. A stage that is not deterministic, not thread-safe, or not "
                "frame-independent while declaring it is the usual cause: run "
                "`vidpipe check-stage STAGE` on each of the task's stages."
            )
        for task, why in s.in_order.items():
            lines.append(f"- {s.layout}: task '{task}' {why}.")
    return [*lines, ""] if lines else []


def _perfect_line(summaries: list[LayoutSummary], meta: dict[str, Any]) -> str:
    """The perfect layout's estimate, and any layout measured above it, with why."""
    perfect = meta["perfect"]
    line = (
        f"Perfect layout (the model's estimate, not a bound): serial's work spread over "
        f"{perfect['cores']} cores with no start-up, copy or GIL, bounded by {perfect['limit']} "
        f"({perfect['why']}): {perfect['speedup']:.2f}x serial."
    )
    above = [s for s in summaries if s.speedup > perfect["speedup"] * 1.02]
    if above:
        cores = meta["environment"]["usable_cores"]
        serial = next(s for s in summaries if s.layout == "serial")
        line += " Measured above it: " + "; ".join(_why_above(s, serial, cores) for s in above)
        line += "."
    return line


def _why_above(s: LayoutSummary, serial: LayoutSummary, cores: int) -> str:
    """Why a layout's measured speedup exceeds the estimate built from serial's work."""

    def cpu(x: LayoutSummary) -> float:
        return x.cpu_percent / 100 * x.wall_seconds * cores

    if cpu(s) < cpu(serial) * 0.97:
        return (
            f"{s.layout} {s.speedup:.2f}x, which spent less CPU than serial ({cpu(s):.1f} CPU-s "
            f"against {cpu(serial):.1f}), and the estimate spreads serial's work"
        )
    return (
        f"{s.layout} {s.speedup:.2f}x, with as much CPU work as serial: the estimate left "
        f"something out, or noise moved serial's median (see docs/case-study.md)"
    )


def _pinned(options: list[str]) -> tuple[list[str], dict[str, str]]:
    """`options` with x264 and OpenCV pinned to one thread unless they say otherwise, and the
    pins as applied."""
    pinned = dict(PINNED_OPTIONS)
    for flag in list(pinned):
        if flag in options:
            pinned[flag] = options[options.index(flag) + 1]
        else:
            options = [*options, flag, pinned[flag]]
    return options, pinned


def _run_folder(out_dir: Path, layout: str, round_: int) -> Path:
    return out_dir / "runs" / f"{layout}-{round_}"


def _check_runs_folders(out_dir: Path, order: list[str], repeat: int) -> None:
    """Refuse, before the first run, a run's folder holding files vidpipe did not write there
    (each run would refuse its own only when its turn came)."""
    for round_ in range(1, repeat + 1):
        for layout in order:
            found = foreign_files(_run_folder(out_dir, layout, round_))
            if found:
                raise OutputConflict(found, forceable=True)


def _rounds(
    source: Path,
    order: list[str],
    repeat: int,
    out_dir: Path,
    options: list[str],
    progress: Callable[[str], None],
) -> tuple[list[Run], dict[str, Any]]:
    """Every layout of `order` once per round, `repeat` rounds (the last traced); the runs, and
    the last run's report."""
    runs: list[Run] = []
    total = repeat * len(order)
    report: dict[str, Any] = {}
    for round_ in range(1, repeat + 1):
        for layout in order:
            out = _run_folder(out_dir, layout, round_)
            traced = round_ == repeat
            started = time.perf_counter()
            report = _run_once(source, layout, out, options, traced)
            runs.append(_to_run(layout, round_, report, traced, out))
            progress(
                f"[{len(runs)}/{total}] {layout}: {report['wall_seconds']:.2f} s "
                f"({time.perf_counter() - started:.1f} s with start-up)"
            )
    return runs, report


def compare(
    source: Path,
    layouts: list[str],
    *,
    repeat: int,
    out_dir: Path,
    options: list[str],
    forecaster: Forecaster | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> tuple[list[LayoutSummary], list[Run]]:
    """Run `layouts` (serial added first if missing) `repeat` times each, interleaved.

    `options` are `vidpipe run` options applied to every run (x264 and OpenCV threads are
    pinned to 1 unless given). `forecaster`, if given, makes predictions from serial's median
    run: each summary gets its layout's, and the perfect layout's estimate goes below the
    table. Writes `results.json` and `results.md` into `out_dir`, where layouts whose frames
    differ from serial's are marked (`LayoutSummary.frames_differ`; the caller decides what
    that means for it); raises `PipelineError` when a run fails.
    """
    from ..config.settings import usable_cores

    order = ["serial", *[layout for layout in layouts if layout != "serial"]]
    if "--force" not in options:
        _check_runs_folders(out_dir, order, repeat)
    options, pinned = _pinned(options)
    runs, report = _rounds(source, order, repeat, out_dir, options, progress)
    summaries = _summaries(runs, usable_cores())
    meta: dict[str, Any] = {}
    if forecaster is not None:
        summaries, meta = _forecast(summaries, runs, forecaster)
    meta |= {
        "input": str(source),
        "layouts": order,
        "repeat": repeat,
        "options": options,
        "pinned": {**pinned, **PINNED_ENV},
        "environment": report["environment"],
    }
    results = {
        **meta,
        "summaries": [asdict(s) for s in summaries],
        "runs": [asdict(r) for r in runs],
        "frames_match_serial": not any(s.frames_differ for s in summaries),
    }
    atomic_write_bytes(out_dir / "results.json", (json.dumps(results, indent=2) + "\n").encode())
    atomic_write_bytes(out_dir / "results.md", results_markdown(summaries, meta).encode())
    return summaries, runs
