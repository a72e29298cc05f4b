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

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.layout_file import is_layout_file
from ..engine.supervisor import die_with_parent
from ..errors import ConfigError, Interrupted, OutputConflict, PipelineError, describe_exit
from ..plan.manifest import foreign_files
from ..plan.outdir import OutDir, atomic_write_bytes, link_to, temp_files
from .comparetable import results_markdown
from .summary import LayoutSummary, Run, summarize, to_run

if TYPE_CHECKING:
    from .forecast import Forecast

__all__ = ["Forecaster", "LayoutSummary", "Run", "compare", "repredict", "results_markdown"]

#: Environment that keeps numerical libraries to one thread in every process of a run.
PINNED_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: Options that keep x264 and OpenCV to one thread, unless the caller sets them.
PINNED_OPTIONS = {"--encoder-threads": "1", "--opencv-threads": "1"}


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
    given = str(Path(layout).absolute()) if is_layout_file(layout) else layout
    args = [sys.executable, "-m", "pipeline", "run", str(source.absolute())]
    args += ["--out", str(out.absolute()), "--layout", given, "--no-progress", *options]
    if trace:
        args.append("--trace")
    env = {**os.environ, **PINNED_ENV}
    with subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,  # its report is read from its folder
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # a terminal's Ctrl-C reaches compare, which passes it on once
        preexec_fn=die_with_parent,  # prctl only: safe between fork and exec
    ) as child:
        try:
            _, said = child.communicate()
        except BaseException as exc:
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            child.send_signal(signum)
            try:
                child.communicate(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                child.kill()
            raise
    if child.returncode != 0:
        _end_run(child.pid, out)
        _raise_failure(layout, child.returncode, os.fsdecode(said))
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return report


def _raise_failure(layout: str, returncode: int, stderr: str) -> None:
    """Raise the error naming `layout` for its run that ended with `returncode`, saying
    `stderr` (a path in it, the input's say, may not be UTF-8: kept as its bytes were).

    Compare was not signalled itself (that raises `Interrupted` while it waits), so a run that
    was interrupted or killed by a signal was stopped from outside: that layout failed."""
    said = stderr.strip().removeprefix("error: ")
    if returncode in (130, 143, 129):
        name = signal.Signals(returncode - 128).name
        raise PipelineError(f"layout '{layout}': its run was interrupted by {name} from outside")
    if returncode == 2:
        raise ConfigError(f"layout '{layout}': {said}")
    if returncode < 0 or not said:  # killed: it could say nothing
        said = f"its run was {describe_exit(returncode)}" + (f" ({said})" if said else "")
    raise PipelineError(f"layout '{layout}' failed: {said}")


def _end_run(session: int, out: Path) -> None:
    """After a failed run: wait up to `STOP_GRACE` seconds for what is left of its processes
    (its session: they die with their parents, the resource tracker freeing shared memory
    first), kill what remains, then remove the temporary and partial files a killed run
    leaves in its folder (vidpipe's own, told by their names: `temp_files`)."""
    deadline = time.monotonic() + STOP_GRACE
    while (left := _session_members(session)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    folders = [out, *_real_folders(OutDir(out).thumbnails("").parent)]
    for leftover in (path for folder in folders for path in temp_files(folder)):
        leftover.unlink(missing_ok=True)


def _real_folders(folder: Path) -> list[Path]:
    """The subfolders of `folder`, never through a link (neither `folder` nor one of them)."""
    if folder.is_symlink() or not folder.is_dir():
        return []
    return [path for path in folder.iterdir() if path.is_dir() and not path.is_symlink()]


def _session_members(session: int) -> list[int]:
    """The live processes of session `session` (Linux's /proc; none found elsewhere)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[3]) == session and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


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
    atomic_write_bytes(out_dir / "results.md", os.fsencode(results_markdown(summaries, results)))
    return summaries


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


#: What a layout file's name keeps in its run folder's name. Never "+": the "+N" that tells
#: apart two layouts of one name cannot then be part of a name kept.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def run_names(layouts: list[str]) -> dict[str, str]:
    """Each layout's name in its run folders' (`OUT/runs/NAME-ROUND`), never a path: a
    registered layout's own, a layout file's stem made safe (letters, digits, `_`, `.` and
    `-`, not first `.` or `-`). A name already taken (registered layouts take theirs first)
    gets `+2`, `+3`, ..."""
    names: dict[str, str] = {}
    for layout in sorted(layouts, key=is_layout_file):
        base = layout
        if is_layout_file(layout):
            base = _UNSAFE.sub("_", Path(layout).stem).lstrip(".-")[:64] or "layout"
        name, count = base, 1
        while name in names.values():
            count += 1
            name = f"{base}+{count}"
        names[layout] = name
    return {layout: names[layout] for layout in layouts}


def _run_folder(out_dir: Path, name: str, round_: int) -> Path:
    return out_dir / "runs" / f"{name}-{round_}"


def _check_runs_folders(out_dir: Path, names: dict[str, str], repeat: int, *, force: bool) -> None:
    """Refuse, before the first run, a run's folder that is a link (also with `force`), or
    that holds files vidpipe did not write there (each run would refuse its own only when its
    turn came)."""
    for round_ in range(1, repeat + 1):
        for name in names.values():
            folder = _run_folder(out_dir, name, round_)
            if folder.is_symlink():
                raise ConfigError(
                    f"--out {out_dir}: {folder} is a symbolic link (to {link_to(folder)}) where "
                    "compare keeps a run; vidpipe never writes through a link: move it away"
                )
            if folder.exists() and not folder.is_dir():
                raise ConfigError(
                    f"--out {out_dir}: {folder} is a file where compare keeps a run; move it away"
                )
            found = [] if force else foreign_files(folder)
            if found:
                raise OutputConflict(found, forceable=True)


def _rounds(
    source: Path,
    names: dict[str, str],
    repeat: int,
    out_dir: Path,
    options: list[str],
    progress: Callable[[str], None],
) -> tuple[list[Run], dict[str, Any]]:
    """Every layout of `names` (to its run folders' name) once per round, `repeat` rounds (the
    last traced); the runs, and the last run's report."""
    runs: list[Run] = []
    total = repeat * len(names)
    report: dict[str, Any] = {}
    for round_ in range(1, repeat + 1):
        for layout, name in names.items():
            out = _run_folder(out_dir, name, round_)
            traced = round_ == repeat
            started = time.perf_counter()
            report = _run_once(source, layout, out, options, traced)
            runs.append(to_run(layout, round_, report, traced, out))
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
    names = run_names(order)
    _check_runs_folders(out_dir, names, repeat, force="--force" in options)
    options, pinned = _pinned(options)
    runs, report = _rounds(source, names, repeat, out_dir, options, progress)
    summaries = summarize(runs, usable_cores())
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
    # The input's name in the title is written as its bytes were, UTF-8 or not.
    atomic_write_bytes(out_dir / "results.md", os.fsencode(results_markdown(summaries, meta)))
    return summaries, runs
