"""Timelines of runs, from their trace files: what every thread and process did, when.

One row per thread of every process (coloured by what it was doing; a stage's time blocked on
the GIL in its own colour, after the part spent running), one row per ffmpeg process (the cores
it used over time), and one for the cores busy in the whole run. Needs matplotlib.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .plots import chart_text, pyplot, save_png

__all__ = ["COLOURS", "LABELS", "timeline_chart"]

# Span colours by what the thread was doing.
COLOURS = {
    "io": "#4c72b0",  # decode / encode: waiting on ffmpeg's pipes
    "stage": "#55a868",  # running a stage
    "gil": "#e377c2",  # in a stage, blocked: waiting for the GIL
    "wait": "#c8c8c8",  # waiting for a frame pool
    "copy": "#c44e52",  # moving frames between processes
    "digest": "#8172b2",
    "save": "#dd8452",
    "progress": "#937860",
    "cpu": "#7f7f7f",  # a process's CPU use, in cores
}
LABELS = {
    "io": "decode / encode (ffmpeg pipes)",
    "stage": "stages",
    "gil": "waiting for the GIL",
    "wait": "waiting for a pool",
    "copy": "copying frames",
    "digest": "digest",
    "save": "background saves",
    "progress": "progress",
    "cpu": "cores in use",
}


@dataclass
class _Row:
    label: str
    spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # by colour
    points: list[tuple[float, float]] = field(default_factory=list)  # a counter: (t, value)
    scale: float = 1.0  # the counter's value at the row's full height


def _spans(event: dict[str, Any], start: float) -> list[tuple[str, float, float]]:
    """(colour, start, length) in seconds: a stage span split into its running part and the
    part it was blocked (its `blocked_ns` argument), others whole."""
    at, length = (event["ts"] - start) / 1e6, max(event["dur"] / 1e6, 1e-5)
    cat = event.get("cat", "stage")
    blocked = (event.get("args") or {}).get("blocked_ns") or 0
    if cat != "stage" or blocked <= 0:
        return [(cat, at, length)]
    gil = min(length, blocked / 1e9)
    return [("stage", at, length - gil), ("gil", at + length - gil, gil)]


def _rows(trace: dict[str, Any]) -> tuple[list[_Row], float, float]:
    """The chart's rows for one trace, and the run's start and end (trace microseconds)."""
    names: dict[Any, str] = {}
    threads: dict[tuple[int, int], list[dict[str, Any]]] = {}
    counters: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for event in trace["traceEvents"]:
        if event["ph"] == "M":
            key = event["pid"] if event["name"] == "process_name" else (event["pid"], event["tid"])
            names[key] = event["args"]["name"]
        elif event["ph"] == "X":
            threads.setdefault((event["pid"], event["tid"]), []).append(event)
        elif event["ph"] == "C" and event["name"] in ("CPU (cores)", "cores busy"):
            counters.setdefault((event["pid"], event["name"]), []).append(
                (event["ts"], event["args"][event["name"]])
            )
    spans = [e for events in threads.values() for e in events]
    start = min(e["ts"] for e in spans)
    end = max(e["ts"] + e["dur"] for e in spans)
    rows = []
    for key in sorted(threads, key=lambda k: (names.get(k[0], ""), names.get(k, ""))):
        row = _Row(f"{_process(names, key[0])} / {names.get(key, key[1])}")
        for event in threads[key]:
            for colour, at, length in _spans(event, start):
                row.spans.setdefault(colour, []).append((at, length))
        rows.append(row)
    busy = max([v for points in counters.values() for _, v in points] or [1.0])
    with_threads = {pid for pid, _ in threads}
    for (pid, name), points in sorted(counters.items(), key=lambda item: item[0][1]):
        if name == "CPU (cores)" and (pid in with_threads or pid not in names):
            continue  # a Python process, whose threads show it already, or an unnamed helper
        label = "all processes: cores busy" if name == "cores busy" else _process(names, pid)
        times = [((t - start) / 1e6, v) for t, v in points]
        rows.append(_Row(label, points=times, scale=max(busy, 1.0)))
    return rows, start, end


def _process(names: dict[Any, str], pid: int) -> str:
    return str(names.get(pid, pid)).split(" (")[0]


def _draw(ax: Any, rows: list[_Row]) -> None:
    for y, row in enumerate(rows):
        # Thousands of short spans share each pixel of the whole-run panel: drawing the
        # activity with the most time last lets it show where it dominates.
        for colour, spans in sorted(row.spans.items(), key=lambda c: sum(d for _, d in c[1])):
            ax.broken_barh(spans, (y - 0.4, 0.8), color=COLOURS.get(colour, "#999999"))
        if row.points:
            times = [t for t, _ in row.points]
            tops = [y + 0.4 - 0.8 * min(v / row.scale, 1.0) for _, v in row.points]
            ax.fill_between(times, y + 0.4, tops, step="post", color=COLOURS["cpu"], lw=0)


def timeline_chart(traces: dict[str, Path], path: Path, zoom_seconds: float = 0.25) -> None:
    """A Gantt chart per layout: one row per thread and per ffmpeg process, and the cores busy.

    The left panel shows the whole run; the right one zooms into `zoom_seconds` in the middle,
    where threads taking turns on the GIL, and processes running side by side, can be seen.
    """
    plt = pyplot()
    loaded = {chart_text(k): _rows(json.loads(p.read_text())) for k, p in traces.items()}
    heights = [max(1, len(rows)) for rows, _, _ in loaded.values()]
    fig, axes = plt.subplots(
        len(loaded),
        2,
        figsize=(14, 1.2 + 0.32 * sum(heights) + 0.6 * len(loaded)),
        gridspec_kw={"height_ratios": heights, "width_ratios": [3, 2]},
        squeeze=False,
    )
    for row, (layout, (rows, start, end)) in enumerate(loaded.items()):
        middle = (end - start) / 2 / 1e6
        for col, ax in enumerate(axes[row]):
            _draw(ax, rows)
            ax.set_yticks(range(len(rows)))
            ax.set_yticklabels([r.label for r in rows] if col == 0 else [], fontsize=7)
            ax.invert_yaxis()
            ax.tick_params(axis="x", labelsize=7)
            if col == 0:
                ax.set_title(f"{layout}: whole run", fontsize=9, loc="left")
                ax.set_xlim(0, (end - start) / 1e6)
                continue
            lo = max(0.0, middle - zoom_seconds / 2)
            ax.set_xlim(lo, lo + zoom_seconds)
            ax.set_title(
                f"{layout}: {zoom_seconds * 1000:.0f} ms in the middle", fontsize=9, loc="left"
            )
    for ax in axes[-1]:
        ax.set_xlabel("seconds")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    fig.legend(handles, LABELS.values(), loc="lower center", ncol=5, fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save_png(plt, fig, path, dpi=100)
