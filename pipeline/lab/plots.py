"""Charts of a comparison: speedups against the ideal, and timelines from trace files.

Needs matplotlib (the `plot` extra); it is imported only when a chart is drawn.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..plan.outdir import atomic_write_bytes
from .compare import LayoutSummary

__all__ = ["speedup_chart", "timeline_chart"]

# Span colours by what the thread was doing.
COLOURS = {
    "io": "#4c72b0",  # decode / encode: waiting on ffmpeg's pipes
    "stage": "#55a868",  # running a stage
    "wait": "#c8c8c8",  # waiting for a frame pool
    "copy": "#c44e52",  # moving frames between processes
    "digest": "#8172b2",
    "save": "#dd8452",
    "progress": "#937860",
}
LABELS = {
    "io": "decode / encode (ffmpeg pipes)",
    "stage": "stages",
    "wait": "waiting for a pool",
    "copy": "copying frames",
    "digest": "digest",
    "save": "background saves",
    "progress": "progress",
}


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("charts need matplotlib: pip install 'vidpipe[plot]'") from exc
    return plt


def _save(plt: Any, fig: Any, path: Path, dpi: int) -> None:
    """Write the figure as PNG, atomically: a chart is at `path` only once complete."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def speedup_chart(summaries: Sequence[LayoutSummary], cores: int, path: Path) -> None:
    """Bars of each layout's median speedup over serial, with the ideal (one per core)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = [s.layout for s in summaries]
    values = [s.speedup for s in summaries]
    bars = ax.bar(names, values, color="#4c72b0")
    ax.bar_label(bars, labels=[f"{v:.2f}x" for v in values], padding=2)
    ax.axhline(cores, color="#c44e52", linestyle="--", label=f"ideal: {cores} cores")
    ax.axhline(1, color="#555555", linewidth=0.8, label="serial")
    ax.set_ylabel("speedup over serial (median wall time)")
    ax.set_ylim(0, max([cores, *values]) * 1.15)
    ax.set_title("Speedup by layout")
    ax.legend(loc="upper left")
    fig.tight_layout()
    _save(plt, fig, path, dpi=110)


def _tracks(
    trace: dict[str, Any],
) -> tuple[dict[tuple[int, int], list[dict[str, Any]]], dict[Any, str]]:
    names: dict[Any, str] = {}
    tracks: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for event in trace["traceEvents"]:
        if event["ph"] == "M":
            key = event["pid"] if event["name"] == "process_name" else (event["pid"], event["tid"])
            names[key] = event["args"]["name"]
        elif event["ph"] == "X":
            tracks.setdefault((event["pid"], event["tid"]), []).append(event)
    return tracks, names


def _process_label(names: dict[Any, str], key: tuple[int, int]) -> str:
    return str(names.get(key[0], key[0])).split(" (")[0]


def timeline_chart(traces: dict[str, Path], path: Path, zoom_seconds: float = 0.25) -> None:
    """A Gantt chart per layout: one row per thread, coloured by what it was doing.

    The left panel shows the whole run; the right one zooms into `zoom_seconds` in the middle,
    where threads taking turns on the GIL, and processes running side by side, can be seen.
    """
    plt = _pyplot()
    loaded = {layout: json.loads(p.read_text()) for layout, p in traces.items()}
    heights = [max(1, len(_tracks(t)[0])) for t in loaded.values()]
    fig, axes = plt.subplots(
        len(loaded),
        2,
        figsize=(14, 1.2 + 0.32 * sum(heights) + 0.6 * len(loaded)),
        gridspec_kw={"height_ratios": heights, "width_ratios": [3, 2]},
        squeeze=False,
    )
    for row, (layout, trace) in enumerate(loaded.items()):
        tracks, names = _tracks(trace)
        start = min(e["ts"] for events in tracks.values() for e in events)
        end = max(e["ts"] + e["dur"] for events in tracks.values() for e in events)
        order = sorted(tracks, key=lambda k: (names.get(k[0], ""), names.get(k, "")))
        middle = (start + end) / 2 / 1e6 - start / 1e6
        for col, ax in enumerate(axes[row]):
            for y, key in enumerate(order):
                by_colour: dict[str, list[tuple[float, float]]] = {}
                for e in tracks[key]:
                    cat = e.get("cat", "stage")
                    by_colour.setdefault(cat, []).append(
                        ((e["ts"] - start) / 1e6, max(e["dur"] / 1e6, 1e-5))
                    )
                # Thousands of short spans share each pixel of the whole-run panel: drawing the
                # activity with the most time last lets it show where it dominates.
                for cat, spans in sorted(by_colour.items(), key=lambda c: sum(d for _, d in c[1])):
                    ax.broken_barh(spans, (y - 0.4, 0.8), color=COLOURS.get(cat, "#999999"))
            ax.set_yticks(range(len(order)))
            ax.set_yticklabels(
                [f"{_process_label(names, k)} / {names.get(k, k[1])}" for k in order]
                if col == 0
                else [],
                fontsize=7,
            )
            ax.invert_yaxis()
            if col == 0:
                ax.set_title(f"{layout}: whole run", fontsize=9, loc="left")
                ax.set_xlim(0, (end - start) / 1e6)
            else:
                lo = max(0.0, middle - zoom_seconds / 2)
                ax.set_xlim(lo, lo + zoom_seconds)
                ax.set_title(
                    f"{layout}: {zoom_seconds * 1000:.0f} ms in the middle", fontsize=9, loc="left"
                )
            ax.tick_params(axis="x", labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("seconds")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    fig.legend(handles, LABELS.values(), loc="lower center", ncol=len(COLOURS), fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _save(plt, fig, path, dpi=100)
